import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { fetch } from 'undici';
import { createCertificate } from '../src/server/certificates.ts';
import { createTestSetup, freePort, type TestSetup } from './support/idp.ts';
import { runIdp } from './support/cli.ts';
import { type IdpProcess, startIdpProcess } from './support/process.ts';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Opens a TLS connection to the server that trusts only the test authority. */
async function openTls(setup: TestSetup, port: number): Promise<TLSSocket> {
  const socket = connect({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    ca: setup.certificates.caCert,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });

  return socket;
}

/** Reads one HTTP/1.1 response with a Content-Length from the socket. */
function readResponse(socket: TLSSocket): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const [statusLine = '', ...lines] = buffer.subarray(0, end).toString().split('\r\n');
      const headers = Object.fromEntries(
        lines.map((line) => {
          const colon = line.indexOf(':');

          return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
        }),
      );
      const length = Number(headers['content-length'] ?? 0);
      if (buffer.length < end + 4 + length) return;
      socket.off('data', onData);
      socket.off('error', reject);
      resolve({
        status: Number(statusLine.split(' ')[1]),
        headers,
        body: buffer.subarray(end + 4, end + 4 + length).toString(),
      });
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

/** Sends a GET on an open keep-alive connection and reads the answer. */
async function get(socket: TLSSocket, path: string): Promise<RawResponse> {
  const response = readResponse(socket);
  socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n`);

  return response;
}

const serialOf = (socket: TLSSocket) => socket.getPeerCertificate().serialNumber.toLowerCase();

describe('idp serve as a process', () => {
  let setup: TestSetup;
  const started: IdpProcess[] = [];

  const start = async (env: Record<string, string> = {}) => {
    const port = await freePort();
    const idp = await startIdpProcess({ ...setup.env, IDP_PORT: String(port), ...env });
    started.push(idp);

    return { idp, port };
  };

  before(async () => {
    setup = await createTestSetup();
  });

  after(async () => {
    for (const idp of started) idp.kill();
    await setup?.cleanup();
  });

  it('SIGTERM finishes requests in flight, refuses new ones, exits 0', async () => {
    const { idp, port } = await start();
    const idle = await openTls(setup, port);
    assert.equal((await get(idle, '/healthz')).status, 200);
    const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()));

    // A token request whose body is still arriving when the signal comes.
    const slow = await openTls(setup, port);
    const body = 'grant_type=authorization_code&code=not-a-real-code&client_id=nobody';
    const slowResponse = readResponse(slow);
    slow.write(
      'POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n' +
        `Content-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
    );
    const quick = Array.from({ length: 5 }, () =>
      fetch(`https://localhost:${port}/.well-known/openid-configuration`, {
        dispatcher: setup.dispatcher,
      }),
    );
    await sleep(100);
    idp.child.kill('SIGTERM');
    await idp.waitForLog((line) => String(line['msg']).startsWith('stopping'));

    await assert.rejects(openTls(setup, port), /ECONNREFUSED/, 'new connections are refused');
    await idleClosed;
    slow.write(body.slice(10));
    const answered = await slowResponse;
    assert.equal(answered.status, 401, 'the request in flight got its real answer');
    assert.match(answered.body, /"error":"invalid_client"/);
    assert.equal(answered.headers['connection'], 'close');
    for (const response of await Promise.all(quick)) assert.equal(response.status, 200);

    const { code } = await idp.exited;
    assert.equal(code, 0);
    assert.ok(idp.logs.some((line) => line['msg'] === 'stopped'));
    assert.equal(idp.stderr(), '');
  });

  it('SIGHUP swaps the certificate and keeps open connections', async () => {
    const { idp, port } = await start();
    const kept = await openTls(setup, port);
    assert.equal((await get(kept, '/healthz')).status, 200);
    const firstSerial = serialOf(kept);

    const next = await createCertificate({
      hosts: ['localhost', '127.0.0.1'],
      issuer: setup.certificates.ca,
    });
    writeFileSync(setup.certificates.certFile, next.cert + setup.certificates.caCert);
    writeFileSync(setup.certificates.keyFile, next.key);
    const nextSerial = new X509Certificate(next.cert).serialNumber.toLowerCase();
    idp.child.kill('SIGHUP');
    await idp.waitForLog((line) => line['msg'] === 'TLS certificate reloaded');

    const fresh = await openTls(setup, port);
    assert.equal(serialOf(fresh), nextSerial, 'new connections get the new certificate');
    assert.notEqual(nextSerial, firstSerial);
    assert.equal((await get(kept, '/healthz')).status, 200, 'the open connection still works');
    assert.equal(kept.destroyed, false);

    // A certificate that does not match the key is refused and the last good one stays.
    const stranger = await createCertificate({
      hosts: ['localhost'],
      issuer: setup.certificates.ca,
    });
    writeFileSync(setup.certificates.certFile, stranger.cert);
    idp.child.kill('SIGHUP');
    const failure = await idp.waitForLog((line) =>
      String(line['msg']).startsWith('TLS certificate reload failed'),
    );
    assert.match(String(failure['reason']), /not a usable pair/);
    const after = await openTls(setup, port);
    assert.equal(serialOf(after), nextSerial);
    assert.equal((await get(after, '/healthz')).status, 200);
    for (const socket of [kept, fresh, after]) socket.destroy();

    // Put the first pair's files back for the other tests of this suite.
    writeFileSync(setup.certificates.certFile, next.cert + setup.certificates.caCert);
    idp.child.kill('SIGTERM');
    assert.equal((await idp.exited).code, 0);
  });

  it('start-up refuses bad settings with one line each', async () => {
    const unused = await freePort();
    const redisDatabase = (pathname: string) => {
      const url = new URL(setup.env['REDIS_URL']!);
      url.pathname = pathname;

      return url.href;
    };
    const without = (...names: string[]) =>
      Object.fromEntries(Object.entries(setup.env).filter(([name]) => !names.includes(name)));
    const cases: [string, Record<string, string>, RegExp][] = [
      [
        'http issuer',
        { ...setup.env, IDP_ISSUER: `http://localhost:${unused}` },
        /^ {2}IDP_ISSUER must be an https URL outside embedded mode/,
      ],
      [
        'missing secret',
        without('IDP_COOKIE_KEYS'),
        /^ {2}IDP_COOKIE_KEYS is required when DATABASE_URL is set/,
      ],
      [
        'missing certificate',
        without('IDP_TLS_CERT_FILE', 'IDP_TLS_KEY_FILE'),
        /^ {2}IDP_TLS_CERT_FILE and IDP_TLS_KEY_FILE are required when DATABASE_URL is set, unless IDP_TRUST_PROXY/,
      ],
      [
        'unreachable database',
        { ...setup.env, DATABASE_URL: `postgres://postgres@127.0.0.1:${unused}/idp` },
        new RegExp(
          `^idp: cannot connect to the database: connect ECONNREFUSED 127.0.0.1:${unused}`,
        ),
      ],
      [
        "Redis database past the server's count",
        { ...setup.env, REDIS_URL: redisDatabase('/99') },
        /^idp: cannot use Redis database 99 of REDIS_URL: Redis has fewer databases/,
      ],
      [
        'Redis database by name',
        { ...setup.env, REDIS_URL: redisDatabase('/abc') },
        /^ {2}REDIS_URL must end with a database number such as \/0, not '\/abc'/,
      ],
      [
        'unreachable Redis',
        { ...setup.env, REDIS_URL: `redis://127.0.0.1:${unused}` },
        new RegExp(`^idp: cannot connect to Redis: connect ECONNREFUSED 127.0.0.1:${unused}`),
      ],
    ];
    const results = await Promise.all(
      cases.map(([, env]) => runIdp({ ...env, IDP_PORT: String(unused) }, ['serve'])),
    );
    for (const [index, [name, , expected]] of cases.entries()) {
      const result = results[index]!;
      assert.equal(result.code, 1, name);
      // A configuration problem comes under one heading line; any other failure is one line.
      const lines = result.stderr
        .trimEnd()
        .split('\n')
        .filter((line) => line !== 'idp: invalid configuration:');
      assert.equal(lines.length, 1, `${name}: ${result.stderr}`);
      assert.match(lines[0]!, expected, name);
      assert.ok(!result.stderr.includes('    at '), `${name}: no stack trace`);
    }
  });
});
