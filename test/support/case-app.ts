import { randomBytes } from 'node:crypto';
import { fetch as undiciFetch } from 'undici';
import { type CaseApp, startCaseApp } from '../../examples/case-app/app.ts';
import type { ClientInput } from '../../src/oidc/clients.ts';
import { freePort, type TestIdp } from './idp.ts';

export interface TestCaseApp extends CaseApp {
  clientId: string;
  /** Lines the app logged, such as sign-in and back-channel logout events. */
  logs: string[];
}

/**
 * Registers the example app in the test idp (with back-channel logout) and starts it on a free
 * localhost port, trusting the test certificate authority.
 */
export async function startTestCaseApp(
  idp: TestIdp,
  overrides: Partial<ClientInput> = {},
  host: 'localhost' | '127.0.0.1' = 'localhost',
): Promise<TestCaseApp> {
  const port = await freePort();
  // Cookies ignore ports: a second app on the same machine needs another host name.
  const baseUrl = new URL(`http://${host}:${port}/`);
  const clientId = `case-app-${randomBytes(4).toString('hex')}`;
  const clientSecret = randomBytes(32).toString('base64url');
  await idp.clients.create({
    clientId,
    name: 'Case Manager',
    redirectUris: [new URL('/callback', baseUrl).href],
    postLogoutRedirectUris: [new URL('/signed-out', baseUrl).href],
    backchannelLogoutUri: new URL('/backchannel-logout', baseUrl).href,
    clientSecret,
    ...overrides,
  });
  const logs: string[] = [];
  const app = await startCaseApp({
    issuer: new URL(idp.issuer),
    clientId,
    clientSecret,
    baseUrl,
    port,
    fetch: ((url: string, init: RequestInit) =>
      undiciFetch(url, {
        ...(init as object),
        dispatcher: idp.dispatcher,
      })) as unknown as typeof fetch,
    log: (line) => logs.push(line),
  });

  return { ...app, clientId, logs };
}
