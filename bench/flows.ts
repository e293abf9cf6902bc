import { createHash, randomBytes } from 'node:crypto';
import { fetch } from 'undici';
import { alertText, parseForms, type PageResponse, TestBrowser } from '../test/support/browser.ts';
import { BENCH_PASSWORD, REDIRECT_URI, type Target } from './servers.ts';
import { totpCodeFor } from './totp.ts';

/** One PKCE verifier for every request of the run: the server hashes it each time all the same. */
export const CODE_VERIFIER = randomBytes(32).toString('base64url');
const CODE_CHALLENGE = createHash('sha256').update(CODE_VERIFIER).digest('base64url');

export interface TokenSet {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
}

/** Builds an authorization request as a relying app would: code flow with PKCE S256. */
export function authorizationUrl(target: Target, loginHint?: string): string {
  const url = new URL('/auth', target.issuer);
  url.search = new URLSearchParams({
    client_id: target.clientId,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile email',
    code_challenge: CODE_CHALLENGE,
    code_challenge_method: 'S256',
    state: randomBytes(8).toString('base64url'),
    nonce: randomBytes(8).toString('base64url'),
    ...(loginHint ? { login_hint: loginHint } : {}),
  }).toString();

  return url.href;
}

export function basicAuth(target: Target): string {
  const id = encodeURIComponent(target.clientId);
  const secret = encodeURIComponent(target.clientSecret);

  return `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
}

function codeOf(page: PageResponse): string {
  const location = page.location ?? '';
  const code = location.startsWith(REDIRECT_URI)
    ? new URL(location).searchParams.get('code')
    : null;
  if (!code) {
    throw new Error(
      `expected a redirect with a code, got ${page.status}: ${page.body.slice(0, 200)}`,
    );
  }

  return code;
}

/**
 * Signs a new browser in as `username` through the forms the server shows (password, then the
 * TOTP code when one is asked for) and returns the authorization code. The baseline has no forms.
 */
export async function signIn(
  target: Target,
  browser: TestBrowser,
  username: string,
): Promise<string> {
  let page = await browser.follow(authorizationUrl(target, username), {}, REDIRECT_URI);
  for (let step = 0; step < 4 && !page.location?.startsWith(REDIRECT_URI); step++) {
    const form = parseForms(page.body)[0];
    if (page.status !== 200 || !form) {
      const reason = alertText(page.body) ?? page.body.slice(0, 200);
      throw new Error(`sign-in of ${username} stopped at ${page.status}: ${reason}`);
    }
    const values: Record<string, string> = {};
    if ('password' in form.fields) Object.assign(values, { username, password: BENCH_PASSWORD });
    else if ('code' in form.fields) values['code'] = totpCodeFor(username);
    page = await browser.submit(page, values, REDIRECT_URI);
  }

  return codeOf(page);
}

/** Asks a signed-in browser for another code; the session and grant let it through at once. */
export async function nextCode(target: Target, browser: TestBrowser): Promise<string> {
  return codeOf(await browser.follow(authorizationUrl(target), {}, REDIRECT_URI));
}

export function codeExchangeBody(code: string): string {
  return new URLSearchParams({
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT_URI,
    code_verifier: CODE_VERIFIER,
  }).toString();
}

export function refreshBody(refreshToken: string): string {
  return new URLSearchParams({
    grant_type: 'refresh_token',
    refresh_token: refreshToken,
  }).toString();
}

/** Posts to the token endpoint with client_secret_basic and returns the tokens. */
export async function tokenRequest(target: Target, body: string): Promise<TokenSet> {
  const response = await fetch(new URL('/token', target.issuer), {
    method: 'POST',
    headers: {
      authorization: basicAuth(target),
      'content-type': 'application/x-www-form-urlencoded',
    },
    body,
    dispatcher: target.dispatcher,
  });
  const text = await response.text();
  if (response.status !== 200)
    throw new Error(`token endpoint returned ${response.status}: ${text}`);

  return JSON.parse(text) as TokenSet;
}

/** Signs a new browser in and exchanges the code: the browser keeps the session. */
export async function signInWithTokens(
  target: Target,
  username: string,
): Promise<{ browser: TestBrowser; tokens: TokenSet }> {
  const browser = new TestBrowser(target.dispatcher);
  const code = await signIn(target, browser, username);

  return { browser, tokens: await tokenRequest(target, codeExchangeBody(code)) };
}

/** Runs `work` for items with at most `concurrency` at a time and returns the results in order. */
export async function inParallel<T, R>(
  items: T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));

  return results;
}

/**
 * Hands out the benchmark accounts. `take` reserves accounts from the end of the list for one
 * scenario's long-lived sessions. `next` cycles through the others for sign-ins, so that an account
 * signs in again only after all the others did, because idp accepts one TOTP code per account and
 * time step.
 */
export class UserPool {
  readonly #users: string[];
  #reserved = 0;
  #turn = 0;

  constructor(users: string[]) {
    this.#users = users;
  }

  take(count: number): string[] {
    const end = this.#users.length - this.#reserved;
    if (end - count < 1) throw new Error('not enough benchmark accounts: raise --accounts');
    this.#reserved += count;

    return this.#users.slice(end - count, end);
  }

  readonly next = (): string => {
    const free = this.#users.length - this.#reserved;

    return this.#users[this.#turn++ % free] as string;
  };
}

/** Exchanges a fresh code from each signed-in browser: one new refresh token chain per browser. */
export async function freshChains(target: Target, browsers: TestBrowser[]): Promise<string[]> {
  return Promise.all(
    browsers.map(async (browser) => {
      const tokens = await tokenRequest(target, codeExchangeBody(await nextCode(target, browser)));

      return tokens.refresh_token!;
    }),
  );
}

/** Signs a new browser in for each user; the sessions stay for minting codes without a password. */
export async function signedInBrowsers(target: Target, users: string[]): Promise<TestBrowser[]> {
  return inParallel(users, 4, async (user) => {
    const browser = new TestBrowser(target.dispatcher);
    await signIn(target, browser, user);

    return browser;
  });
}
