import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { fetch } from 'undici';
import { TestBrowser } from './support/browser.ts';
import {
  createTestClient,
  freePort,
  startTestIdp,
  TEST_PASSWORD,
  type TestIdp,
} from './support/idp.ts';
import { discoverRp, signInAndExchange } from './support/rp.ts';
import { createCertificate } from '../src/server/certificates.ts';
import { loadTlsFiles } from '../src/server/tls.ts';
import { createTestCertificates } from './support/tls.ts';

/** Opens a TLS connection to the server and returns its certificate, or the handshake error. */
function handshake(port: number, ca: string, options: { maxVersion?: 'TLSv1.1' | 'TLSv1.2' } = {}) {
  return new Promise<PeerCertificate>((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, servername: 'localhost', ca, ...options },
      () => {
        const certificate = socket.getPeerCertificate();
        socket.end();
        resolve(certificate);
      },
    );
    socket.once('error', reject);
  });
}

for (const keyType of ['ec', 'rsa'] as const) {
  describe(`https with an ${keyType === 'ec' ? 'ECDSA' : 'RSA'} certificate`, () => {
    let idp: TestIdp;

    before(async () => {
      idp = await startTestIdp({ keyType });
    });

    after(async () => {
      await idp?.close();
    });

    it('serves the configured certificate', async () => {
      const certificate = await handshake(idp.port, idp.certificates.caCert);
      assert.equal(certificate.subject.CN, 'localhost');
      if (keyType === 'ec') assert.equal(certificate.asn1Curve, 'prime256v1');
      else assert.equal(certificate.bits, 2048);
    });

    it('accepts TLS 1.2 and rejects TLS 1.1', async () => {
      await handshake(idp.port, idp.certificates.caCert, { maxVersion: 'TLSv1.2' });
      await assert.rejects(handshake(idp.port, idp.certificates.caCert, { maxVersion: 'TLSv1.1' }));
    });

    it('a full sign-in works', async () => {
      const app = await createTestClient(idp);
      await idp.accounts.create({ username: 'tls-user', password: TEST_PASSWORD });
      const config = await discoverRp(idp, app.clientId, app.clientSecret);
      const browser = new TestBrowser(idp.dispatcher);
      const { tokens } = await signInAndExchange(
        idp,
        config,
        browser,
        app.redirectUri,
        'tls-user',
        TEST_PASSWORD,
      );
      assert.ok(tokens.claims()?.sub);
    });
  });
}

describe('behind a TLS proxy (IDP_TRUST_PROXY=true)', () => {
  let idp: TestIdp;
  let proxy: Server;

  before(async () => {
    const proxyPort = await freePort();
    // A TLS-terminating proxy in front of the plain-HTTP idp, as nginx or a load balancer would be.
    const certificates = await createTestCertificates();
    idp = await startTestIdp({
      env: {
        IDP_TRUST_PROXY: 'true',
        IDP_TLS_CERT_FILE: '',
        IDP_TLS_KEY_FILE: '',
        IDP_ISSUER: `https://localhost:${proxyPort}`,
      },
      extraCa: certificates.caCert,
    });
    proxy = createHttpsServer(
      { cert: readFileSync(certificates.certFile), key: readFileSync(certificates.keyFile) },
      (req, res) => {
        const upstream = httpRequest(
          {
            host: '127.0.0.1',
            port: idp.port,
            method: req.method,
            path: req.url,
            headers: {
              ...req.headers,
              'x-forwarded-proto': 'https',
              'x-forwarded-for': '198.51.100.23',
              'x-forwarded-host': req.headers.host,
            },
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        req.pipe(upstream);
      },
    );
    await new Promise<void>((resolve) => proxy.listen(proxyPort, '127.0.0.1', resolve));
  });

  after(async () => {
    proxy?.closeAllConnections();
    proxy?.close();
    await idp?.close();
  });

  it('idp itself speaks plain HTTP', async () => {
    const response = await fetch(`http://127.0.0.1:${idp.port}/healthz`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('strict-transport-security') ?? '', /max-age/);
  });

  it('discovery stays https', async () => {
    const response = await fetch(`http://127.0.0.1:${idp.port}/.well-known/openid-configuration`);
    const discovery = (await response.json()) as Record<string, string>;
    assert.equal(discovery['issuer'], idp.issuer);
    assert.match(discovery['token_endpoint'] ?? '', /^https:\/\/localhost:\d+\/token$/);
  });

  it('sign-in through the proxy: cookies Secure, client IP from the proxy', async () => {
    const app = await createTestClient(idp);
    await idp.accounts.create({ username: 'proxied', password: TEST_PASSWORD });
    const config = await discoverRp(idp, app.clientId, app.clientSecret);
    const browser = new TestBrowser(idp.dispatcher);
    const { tokens } = await signInAndExchange(
      idp,
      config,
      browser,
      app.redirectUri,
      'proxied',
      TEST_PASSWORD,
    );
    assert.ok(tokens.claims()?.sub);
    const cookies = await browser.jar.getCookies(idp.issuer);
    assert.ok(cookies.length > 0);
    for (const cookie of cookies) assert.equal(cookie.secure, true, cookie.key);
    const requests = idp.logs.filter((line) => line['msg'] === 'request');
    assert.ok(requests.length > 0);
    for (const line of requests.filter((entry) =>
      String(entry['path']).startsWith('/interaction'),
    )) {
      assert.equal(line['ip'], '198.51.100.23');
    }
  });
});

describe('forwarded headers outside a trusted proxy', () => {
  for (const [trustProxy, expectedIp] of [
    ['false', '127.0.0.1'],
    ['10.9.9.9,192.0.2.0/24', '127.0.0.1'],
    ['127.0.0.1', '203.0.113.7'],
  ] as const) {
    it(`IDP_TRUST_PROXY=${trustProxy} gives ip ${expectedIp}`, async () => {
      const idp = await startTestIdp({ env: { IDP_TRUST_PROXY: trustProxy } });
      try {
        for (const forwarded of ['203.0.113.7', 'junk, , 999.1.1.1', '203.0.113.7, 10.0.0.1']) {
          const response = await fetch(`${idp.issuer}/healthz`, {
            dispatcher: idp.dispatcher,
            headers: {
              'x-forwarded-for': forwarded,
              'x-forwarded-proto': 'http',
              'x-request-id': 'request-from-the-peer',
            },
          });
          assert.equal(response.status, 200);
          // Only a trusted proxy may set the request id, and anyone else's is replaced.
          const requestId = response.headers.get('x-request-id');
          if (trustProxy === '127.0.0.1') assert.equal(requestId, 'request-from-the-peer');
          else assert.match(requestId ?? '', /^[0-9a-f-]{36}$/);
        }
        const ips = idp.logs
          .filter((line) => line['path'] === '/healthz')
          .map((line) => line['ip']);
        assert.equal(ips.length, 3);
        if (trustProxy === '127.0.0.1') {
          // The trusted proxy's header is read; its last hop is the client address.
          assert.equal(ips[0], expectedIp);
        } else {
          assert.deepEqual(ips, [expectedIp, expectedIp, expectedIp]);
        }
      } finally {
        await idp.close();
      }
    });
  }
});

describe('certificate and key pairs', () => {
  it('key of another type rejected', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idp-pair-'));
    try {
      const ec = await createCertificate({ hosts: ['localhost'], keyType: 'ec' });
      const rsa = await createCertificate({ hosts: ['localhost'], keyType: 'rsa' });
      const file = (name: string, text: string) => {
        writeFileSync(path.join(dir, name), text);

        return path.join(dir, name);
      };
      for (const [cert, key] of [
        [ec.cert, rsa.key],
        [rsa.cert, ec.key],
      ] as const) {
        assert.throws(
          () => loadTlsFiles(file('cert.pem', cert), file('key.pem', key)),
          /are not a usable pair: the key does not belong to the certificate/,
        );
      }
      assert.ok(loadTlsFiles(file('cert.pem', rsa.cert), file('key.pem', rsa.key)).context);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
