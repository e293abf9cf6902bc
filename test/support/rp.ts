import assert from 'node:assert/strict';
import * as client from 'openid-client';
import { fetch } from 'undici';
import type { TestBrowser } from './browser.ts';
import type { TestIdp } from './idp.ts';

/**
 * Discovers the test idp with openid-client, trusting the test authority through undici. Requests
 * to the issuer go to this node's own address, as a load balancer would send them there;
 * `onRequest` sees each URL requested. With `verifySignatures`, openid-client also checks the
 * signature of ID tokens from the token endpoint against the JWKS, which it otherwise skips
 * because TLS already authenticates that response.
 */
export async function discoverRp(
  idp: TestIdp,
  clientId: string,
  clientSecret?: string,
  options: { onRequest?: (url: URL) => void; verifySignatures?: boolean } = {},
): Promise<client.Configuration> {
  // Some tests pass a partial TestIdp with only the issuer: then requests go to the issuer.
  const node = (idp.url as string | undefined) ?? idp.issuer;
  const customFetch = ((url: string, init: Record<string, unknown>) => {
    const target = new URL(url.startsWith(idp.issuer) ? node + url.slice(idp.issuer.length) : url);
    options.onRequest?.(target);

    return fetch(target, { ...init, dispatcher: idp.dispatcher } as Parameters<typeof fetch>[1]);
  }) as unknown as client.CustomFetch;
  const config = await client.discovery(
    new URL(idp.issuer),
    clientId,
    clientSecret ? { client_secret: clientSecret } : undefined,
    clientSecret ? client.ClientSecretBasic(clientSecret) : client.None(),
    { [client.customFetch]: customFetch },
  );
  config[client.customFetch] = customFetch;
  if (options.verifySignatures) client.enableNonRepudiationChecks(config);

  return config;
}

export interface AuthorizationStart {
  url: URL;
  verifier: string;
  state: string;
  nonce: string;
}

/** Builds an authorization request with PKCE S256, as a relying app would. */
export async function startAuthorization(
  config: client.Configuration,
  redirectUri: string,
  extra: Record<string, string> = {},
): Promise<AuthorizationStart> {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });

  return { url, verifier, state, nonce };
}

/**
 * Signs in through the login form as a browser would and returns the URL the provider redirected
 * back to (the relying app's callback with the code).
 */
export async function signInWithPassword(
  browser: TestBrowser,
  start: AuthorizationStart,
  redirectUri: string,
  username: string,
  password: string,
): Promise<URL> {
  const loginPage = await browser.follow(start.url.href, {}, redirectUri);
  if (loginPage.status !== 200) {
    throw new Error(
      `expected the login page, got ${loginPage.status}: ${loginPage.body.slice(0, 300)}`,
    );
  }
  const done = await browser.submit(loginPage, { username, password }, redirectUri);
  if (!done.location?.startsWith(redirectUri)) {
    throw new Error(
      `sign-in did not return to the app (${done.status}): ${done.body.slice(0, 300)}`,
    );
  }

  return new URL(done.location);
}

/**
 * Runs a whole sign-in up to the app's callback, and returns the callback URL with the checks that
 * openid-client needs to exchange its code.
 */
export async function signInForCode(
  config: client.Configuration,
  browser: TestBrowser,
  redirectUri: string,
  username: string,
  password: string,
) {
  const start = await startAuthorization(config, redirectUri);
  const callback = await signInWithPassword(browser, start, redirectUri, username, password);
  const checks = {
    pkceCodeVerifier: start.verifier,
    expectedState: start.state,
    expectedNonce: start.nonce,
  };

  return { start, callback, checks };
}

/** Runs a whole sign-in and exchanges the code for tokens. */
export async function signInAndExchange(
  idp: TestIdp,
  config: client.Configuration,
  browser: TestBrowser,
  redirectUri: string,
  username: string,
  password: string,
) {
  const { start, callback, checks } = await signInForCode(
    config,
    browser,
    redirectUri,
    username,
    password,
  );
  const tokens = await client.authorizationCodeGrant(config, callback, checks);

  return { start, callback, tokens };
}

/**
 * Asserts that an app's session at idp has ended: a silent authorization in its browser returns
 * `login_required`, the refresh token is rejected with `invalid_grant`, and the access token is
 * inactive at introspection.
 */
export async function assertSessionEnded(
  config: client.Configuration,
  browser: TestBrowser,
  redirectUri: string,
  tokens: Pick<client.TokenEndpointResponse, 'access_token' | 'refresh_token'>,
): Promise<void> {
  const silent = await startAuthorization(config, redirectUri, { prompt: 'none' });
  const answer = await browser.request(silent.url.href);
  assert.ok(answer.location, `no redirect: ${answer.status} ${answer.body.slice(0, 200)}`);
  assert.equal(new URL(answer.location).searchParams.get('error'), 'login_required');
  assert.ok(tokens.refresh_token, 'the app got no refresh token');
  await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), {
    error: 'invalid_grant',
  });
  const introspected = await client.tokenIntrospection(config, tokens.access_token);
  assert.equal(introspected.active, false, 'the access token is still active');
}
