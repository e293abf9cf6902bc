import assert from 'node:assert/strict';
import * as client from 'openid-client';
import { generateSecret, timeStep } from '../../src/mfa/totp.ts';
import type { MfaStore } from '../../src/mfa/store.ts';
import { decodeHtml, type PageResponse, type TestBrowser } from './browser.ts';
import { type AuthorizationStart, startAuthorization } from './rp.ts';
import { Authenticator, base32Decode, decodeQrDataUrl } from './totp.ts';

export type PageKind = 'login' | 'code' | 'recovery' | 'enrol' | 'codes' | 'app' | 'other';

/** Tells which step a response is: a sign-in page, or the redirect back to the app. */
export function pageKind(page: PageResponse, redirectUri: string): PageKind {
  if (page.location?.startsWith(redirectUri)) return 'app';
  if (page.status !== 200 && page.status !== 400) return 'other';
  if (/action="\/interaction\/[^"]+\/login"/.test(page.body)) return 'login';
  if (/action="\/interaction\/[^"]+\/totp"/.test(page.body)) return 'code';
  if (/action="\/interaction\/[^"]+\/recovery"/.test(page.body)) return 'recovery';
  if (/action="[^"]*\/enrol"|action="\/account\/authenticator\/confirm"/.test(page.body)) {
    return 'enrol';
  }
  if (
    /class="codes"/.test(page.body) ||
    /action="\/interaction\/[^"]+\/continue"/.test(page.body)
  ) {
    return 'codes';
  }

  return 'other';
}

/** Starts an authorization request and submits the password; returns the next page. */
export async function passwordStep(
  config: client.Configuration,
  browser: TestBrowser,
  redirectUri: string,
  username: string,
  password: string,
  extra: Record<string, string> = {},
): Promise<{ start: AuthorizationStart; page: PageResponse }> {
  const start = await startAuthorization(config, redirectUri, extra);
  const loginPage = await browser.follow(start.url.href, {}, redirectUri);
  assert.equal(pageKind(loginPage, redirectUri), 'login', loginPage.body.slice(0, 400));
  const page = await browser.submit(loginPage, { username, password }, redirectUri);

  return { start, page };
}

/** Submits a code on a code, recovery or enrolment page. */
export function submitCode(
  browser: TestBrowser,
  page: PageResponse,
  code: string,
  redirectUri: string,
): Promise<PageResponse> {
  return browser.submit(page, { code }, redirectUri);
}

/** Reads the QR code and the manual key of an enrolment page; both must name one secret. */
export function readEnrolmentPage(page: PageResponse): { uri: URL; key: Buffer } {
  const img = /<img class="qr" src="([^"]+)"/.exec(page.body)?.[1];
  assert.ok(img, 'enrolment page has a QR image');
  const uri = new URL(decodeQrDataUrl(decodeHtml(img)));
  const manual = /<code class="key">([^<]+)<\/code>/.exec(page.body)?.[1];
  assert.ok(manual, 'enrolment page shows the key');
  assert.match(manual, /^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$/, 'key in groups of four');
  const key = base32Decode(manual);
  assert.deepEqual(base32Decode(uri.searchParams.get('secret') ?? ''), key, 'QR and key differ');

  return { uri, key };
}

/** Reads the recovery codes listed on a page. */
export function readRecoveryCodes(page: PageResponse): string[] {
  return [...page.body.matchAll(/<li><code>([a-z2-7-]+)<\/code><\/li>/g)].map((m) => m[1]!);
}

/**
 * Enrols from an enrolment page: reads the QR code, confirms with a code, and goes past the
 * recovery codes. Returns the authenticator, the codes, their page and the response that follows.
 */
export async function enrol(
  browser: TestBrowser,
  page: PageResponse,
  redirectUri: string,
): Promise<{
  authenticator: Authenticator;
  codes: string[];
  codesPage: PageResponse;
  page: PageResponse;
}> {
  const { key } = readEnrolmentPage(page);
  const authenticator = new Authenticator(key);
  const codesPage = await submitCode(browser, page, await authenticator.nextCode(), redirectUri);
  assert.equal(pageKind(codesPage, redirectUri), 'codes', codesPage.body.slice(0, 600));
  const codes = readRecoveryCodes(codesPage);
  assert.equal(codes.length, 10);
  const next = await browser.submit(codesPage, {}, redirectUri);

  return { authenticator, codes, codesPage, page: next };
}

/** Exchanges the code of the app's callback with openid-client; returns the ID token claims. */
export async function exchange(
  config: client.Configuration,
  start: AuthorizationStart,
  page: PageResponse,
) {
  assert.ok(page.location, `expected a redirect to the app, got ${page.status}: ${page.body}`);
  const tokens = await client.authorizationCodeGrant(config, new URL(page.location), {
    pkceCodeVerifier: start.verifier,
    expectedState: start.state,
    expectedNonce: start.nonce,
  });
  const claims = tokens.claims();
  assert.ok(claims);

  return { tokens, claims };
}

/**
 * Gives an account an authenticator directly in the database, recording the time step two before
 * now as the last one used. Returns the key, an authenticator past that step and the recovery codes.
 */
export async function enrolInDatabase(mfa: MfaStore, accountId: string) {
  const key = generateSecret();
  const usedStep = timeStep(Date.now()) - 2;
  const codes = await mfa.enrol(accountId, key, usedStep);
  const authenticator = new Authenticator(key);
  authenticator.used(usedStep);

  return { key, authenticator, codes };
}
