import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { createLocalJWKSet, type JWTPayload, jwtVerify } from 'jose';
import { Agent, fetch } from 'undici';
import type { ServerOptions } from '../../src/main.ts';
import { freePort, type TestIdp } from './idp.ts';
import { createTestCertificates } from './tls.ts';

export const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/**
 * The back-channel logout endpoint of a test relying app: an https server on 127.0.0.1 with a
 * certificate authority of its own, which records every logout token posted to it.
 */
export interface LogoutReceiver {
  /** Base URL; register `${url}/backchannel/<name>` as a client's back-channel logout URI. */
  url: string;
  /** File of the receiver's certificate authority, for NODE_EXTRA_CA_CERTS of a command. */
  caFile: string;
  /** Tokens received so far, with the path they were posted to. */
  received: { path: string; token: string }[];
  /** An outboundFetch for startServer that trusts the receiver's authority. */
  outboundFetch: NonNullable<ServerOptions['outboundFetch']>;
  close(): Promise<void>;
}

export async function startLogoutReceiver(): Promise<LogoutReceiver> {
  const certificates = await createTestCertificates();
  const port = await freePort();
  const received: { path: string; token: string }[] = [];
  const server: Server = createServer(
    { cert: readFileSync(certificates.certFile), key: readFileSync(certificates.keyFile) },
    (req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const token = new URLSearchParams(body).get('logout_token');
        if (req.method === 'POST' && token) received.push({ path: req.url ?? '', token });
        res.writeHead(token ? 200 : 400, { 'cache-control': 'no-store' }).end();
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const agent = new Agent({ connect: { ca: certificates.caCert } });
  const caFile = `${certificates.dir}/receiver-ca.pem`;
  writeFileSync(caFile, certificates.caCert);

  return {
    url: `https://127.0.0.1:${port}`,
    caFile,
    received,
    outboundFetch: ((url: string, init: object) =>
      fetch(url, { ...init, dispatcher: agent } as Parameters<
        typeof fetch
      >[1])) as unknown as LogoutReceiver['outboundFetch'],
    async close() {
      server.closeAllConnections();
      server.close();
      await agent.close();
    },
  };
}

/** Verifies a logout token as a relying app would, against idp's published keys. */
export async function verifyLogoutToken(
  idp: TestIdp,
  token: string,
  clientId: string,
): Promise<JWTPayload> {
  const response = await fetch(`${idp.issuer}/jwks`, { dispatcher: idp.dispatcher });
  const jwks = (await response.json()) as Parameters<typeof createLocalJWKSet>[0];
  const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
    issuer: idp.issuer,
    audience: clientId,
    typ: 'logout+jwt',
    maxTokenAge: '2m',
  });

  return payload;
}
