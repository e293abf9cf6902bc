import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import { fetch } from 'undici';
import { INVALID_CREDENTIALS } from '../src/interactions/login.ts';
import { alertText, TestBrowser } from './support/browser.ts';
import { type IdpFixture, openIdpFixture, type TestRp } from './support/fixture.ts';
import { TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import {
  signInAndExchange,
  signInForCode,
  signInWithPassword,
  startAuthorization,
} from './support/rp.ts';

describe('sign-in over TLS', () => {
  let fixture: IdpFixture<'app', 'alice'>;
  let idp: TestIdp;
  let app: TestRp;
  let config: client.Configuration;
  let aliceId: string;

  before(async () => {
    fixture = await openIdpFixture({
      clients: { app: {} },
      users: {
        alice: {
          username: 'Alice',
          password: TEST_PASSWORD,
          email: 'alice@example.org',
          name: 'Alice Example',
        },
      },
    });
    idp = fixture.idp;
    app = fixture.clients.app;
    config = app.config;
    aliceId = fixture.users.alice.id;
  });

  after(async () => {
    await fixture?.close();
  });

  const get = (path: string) => fetch(new URL(path, idp.issuer), { dispatcher: idp.dispatcher });

  it('discovery lists only https endpoints and S256', async () => {
    const response = await get('/.well-known/openid-configuration');
    assert.equal(response.status, 200);
    const discovery = (await response.json()) as Record<string, unknown>;
    assert.equal(discovery['issuer'], idp.issuer);
    const endpoints = Object.entries(discovery).filter(
      ([key, value]) =>
        (key.endsWith('_endpoint') || key === 'jwks_uri') && typeof value === 'string',
    );
    assert.ok(endpoints.length >= 6, 'expected the usual endpoints');
    for (const [key, value] of endpoints) {
      assert.match(value as string, /^https:\/\/localhost:\d+\//, `${key} is not https`);
    }
    assert.deepEqual(discovery['code_challenge_methods_supported'], ['S256']);
    assert.deepEqual(discovery['response_types_supported'], ['code']);
    const algs = discovery['id_token_signing_alg_values_supported'] as string[];
    assert.ok(algs.includes('RS256'), `algorithms: ${algs.join(', ')}`);
    assert.ok(algs.includes('ES256'), `algorithms: ${algs.join(', ')}`);
    assert.ok(!algs.includes('EdDSA'));
  });

  it('JWKS publishes RS256 and ES256 public keys only', async () => {
    const { keys } = (await (await get('/jwks')).json()) as { keys: Record<string, unknown>[] };
    assert.deepEqual(keys.map((key) => key['alg']).sort(), ['ES256', 'RS256']);
    for (const key of keys) {
      assert.equal(key['d'], undefined, 'private part published');
      assert.equal(key['p'], undefined, 'private part published');
    }
  });

  it('HSTS and a CSP without unsafe-inline on every response', async () => {
    for (const path of ['/.well-known/openid-configuration', '/jwks', '/healthz', '/nowhere']) {
      const response = await get(path);
      assert.match(response.headers.get('strict-transport-security') ?? '', /max-age=\d{8}/, path);
      const csp = response.headers.get('content-security-policy') ?? '';
      assert.ok(csp.includes("default-src 'self'"), path);
      assert.ok(!csp.includes('unsafe-inline'), path);
    }
  });

  it('full sign-in with openid-client: tokens, claims, userinfo', async () => {
    const browser = new TestBrowser(idp.dispatcher);
    const { tokens } = await signInAndExchange(
      idp,
      config,
      browser,
      app.redirectUri,
      'alice',
      TEST_PASSWORD,
    );
    const claims = tokens.claims();
    assert.ok(claims);
    assert.equal(claims.sub, aliceId);
    assert.notEqual(claims.sub, 'alice');
    assert.equal(claims['preferred_username'], 'Alice');
    assert.equal(claims['name'], 'Alice Example');
    assert.equal(claims['email'], 'alice@example.org');
    assert.deepEqual(claims['amr'], ['pwd']);
    assert.ok(tokens.refresh_token, 'a refresh token is issued');

    const header = JSON.parse(
      Buffer.from(tokens.id_token!.split('.')[0] as string, 'base64url').toString(),
    ) as { alg: string };
    assert.equal(header.alg, 'RS256');

    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    assert.equal(userinfo.sub, aliceId);
    assert.equal(userinfo['preferred_username'], 'Alice');
    assert.equal(userinfo.email, 'alice@example.org');
  });

  it('scope openid alone releases no profile or email claims', async () => {
    const browser = new TestBrowser(idp.dispatcher);
    const start = await startAuthorization(config, app.redirectUri, { scope: 'openid' });
    const callback = await signInWithPassword(
      browser,
      start,
      app.redirectUri,
      'alice',
      TEST_PASSWORD,
    );
    const tokens = await client.authorizationCodeGrant(config, callback, {
      pkceCodeVerifier: start.verifier,
      expectedState: start.state,
      expectedNonce: start.nonce,
    });
    const claims = tokens.claims()!;
    assert.equal(claims.sub, aliceId);
    assert.equal(claims['email'], undefined);
    assert.equal(claims['preferred_username'], undefined);
  });

  it('refresh token rotates; reusing the old one fails', async () => {
    const browser = new TestBrowser(idp.dispatcher);
    const { tokens } = await signInAndExchange(
      idp,
      config,
      browser,
      app.redirectUri,
      'alice',
      TEST_PASSWORD,
    );
    const first = tokens.refresh_token!;
    const refreshed = await client.refreshTokenGrant(config, first);
    assert.ok(refreshed.refresh_token);
    assert.notEqual(refreshed.refresh_token, first);
    assert.ok(refreshed.access_token);

    await assert.rejects(
      client.refreshTokenGrant(config, first),
      (error: Error & { error?: string }) => {
        assert.equal(error.error, 'invalid_grant');

        return true;
      },
    );
  });

  it('introspection and revocation', async () => {
    const browser = new TestBrowser(idp.dispatcher);
    const { tokens } = await signInAndExchange(
      idp,
      config,
      browser,
      app.redirectUri,
      'alice',
      TEST_PASSWORD,
    );
    const active = await client.tokenIntrospection(config, tokens.access_token);
    assert.equal(active.active, true);
    assert.equal(active.sub, aliceId);

    await client.tokenRevocation(config, tokens.access_token);
    const revoked = await client.tokenIntrospection(config, tokens.access_token);
    assert.equal(revoked.active, false);

    await client.tokenRevocation(config, tokens.refresh_token!);
    await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token!));
  });

  it('a second use of an authorization code fails', async () => {
    const browser = new TestBrowser(idp.dispatcher);
    const { callback, checks } = await signInForCode(
      config,
      browser,
      app.redirectUri,
      'alice',
      TEST_PASSWORD,
    );
    const tokens = await client.authorizationCodeGrant(config, callback, checks);
    await assert.rejects(
      client.authorizationCodeGrant(config, callback, checks),
      (error: Error & { error?: string }) => {
        assert.equal(error.error, 'invalid_grant');

        return true;
      },
    );
    // Reusing a code revokes what it issued.
    const introspected = await client.tokenIntrospection(config, tokens.access_token);
    assert.equal(introspected.active, false);
  });

  it('wrong password, unknown and disabled user show one message', async () => {
    const bob = await idp.accounts.create({ username: 'bob', password: TEST_PASSWORD });
    await idp.accounts.setDisabled(bob.id, true);
    const cases = [
      ['alice', 'wrong password!'],
      ['nobody-here', TEST_PASSWORD],
      ['bob', TEST_PASSWORD],
      ['', ''],
      // Postgres rejects a NUL in a query parameter, so these must not reach it.
      ['alice\u0000', TEST_PASSWORD],
      ['\u0000', 'x'],
    ] as const;
    for (const [username, password] of cases) {
      const browser = new TestBrowser(idp.dispatcher);
      const start = await startAuthorization(config, app.redirectUri);
      const loginPage = await browser.follow(start.url.href, {}, app.redirectUri);
      const result = await browser.submit(loginPage, { username, password }, app.redirectUri);
      assert.equal(result.status, 400, `status for ${username}`);
      assert.equal(result.location, undefined, `no redirect for ${username}`);
      assert.equal(alertText(result.body), INVALID_CREDENTIALS, `message for ${username}`);
      assert.equal(result.headers.get('cache-control'), 'no-store');
    }
  });

  it('the login page escapes what the user typed', async () => {
    const browser = new TestBrowser(idp.dispatcher);
    const start = await startAuthorization(config, app.redirectUri);
    const loginPage = await browser.follow(start.url.href, {}, app.redirectUri);
    const result = await browser.submit(loginPage, {
      username: '"><script>alert(1)</script>',
      password: 'x',
    });
    assert.ok(!result.body.includes('<script>alert(1)'));
    assert.ok(result.body.includes('&lt;script&gt;'));
  });

  it('PKCE plain or missing is rejected', async () => {
    const base = await startAuthorization(config, app.redirectUri);
    const plain = new URL(base.url);
    plain.searchParams.set('code_challenge_method', 'plain');
    plain.searchParams.set('code_challenge', 'a'.repeat(43));
    const missing = new URL(base.url);
    missing.searchParams.delete('code_challenge');
    missing.searchParams.delete('code_challenge_method');
    for (const url of [plain, missing]) {
      const browser = new TestBrowser(idp.dispatcher);
      const response = await browser.request(url.href);
      assert.equal(response.status, 303);
      const back = new URL(response.location!);
      assert.equal(`${back.origin}${back.pathname}`, app.redirectUri);
      assert.equal(back.searchParams.get('error'), 'invalid_request');
      assert.equal(back.searchParams.get('code'), null);
    }
  });

  it('an unregistered redirect_uri shows an error page and never redirects', async () => {
    const variants = [
      'https://evil.example.test/callback',
      `${app.redirectUri}/extra`,
      `${app.redirectUri}?x=1`,
      app.redirectUri.toUpperCase(),
    ];
    for (const redirectUri of variants) {
      const start = await startAuthorization(config, redirectUri);
      const browser = new TestBrowser(idp.dispatcher);
      const response = await browser.request(start.url.href);
      assert.equal(response.status, 400, redirectUri);
      assert.equal(response.location, undefined, redirectUri);
      assert.match(response.body, /redirect_uri/);
      assert.equal(response.headers.get('cache-control'), 'no-store');
    }
  });

  it('a login form posted from another browser is rejected', async () => {
    const victim = new TestBrowser(idp.dispatcher);
    const start = await startAuthorization(config, app.redirectUri);
    const loginPage = await victim.follow(start.url.href, {}, app.redirectUri);
    const attacker = new TestBrowser(idp.dispatcher);
    const result = await attacker.submit(loginPage, { username: 'alice', password: TEST_PASSWORD });
    assert.equal(result.status, 400);
    assert.equal(result.location, undefined);
    assert.match(alertText(result.body) ?? '', /expired or was opened in another browser/);
  });

  it('an unknown interaction shows the expired page', async () => {
    const browser = new TestBrowser(idp.dispatcher);
    const response = await browser.request(`${idp.issuer}/interaction/not-a-real-uid`);
    assert.equal(response.status, 400);
    assert.equal(response.headers.get('cache-control'), 'no-store');
    assert.match(alertText(response.body) ?? '', /expired/);
  });

  it('RP-initiated logout ends the session; unregistered post-logout URI fails', async () => {
    const browser = new TestBrowser(idp.dispatcher);
    const { tokens } = await signInAndExchange(
      idp,
      config,
      browser,
      app.redirectUri,
      'alice',
      TEST_PASSWORD,
    );
    const unregistered = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: 'https://evil.example.test/out',
    });
    const refused = await browser.request(unregistered.href);
    assert.equal(refused.status, 400);
    assert.equal(refused.location, undefined);

    const endSession = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: 'https://app.example.test/signed-out',
      state: 'bye',
    });
    const confirm = await browser.follow(endSession.href);
    assert.equal(confirm.status, 200);
    const done = await browser.submit(confirm, { logout: 'yes' }, 'https://app.example.test/');
    assert.equal(done.location, 'https://app.example.test/signed-out?state=bye');

    // The session is gone: a silent request now needs a login.
    const silent = await startAuthorization(config, app.redirectUri, { prompt: 'none' });
    const answer = await browser.request(silent.url.href);
    const back = new URL(answer.location!);
    assert.equal(back.searchParams.get('error'), 'login_required');
  });

  it('a signed-in browser gets a code with prompt=none', async () => {
    const browser = new TestBrowser(idp.dispatcher);
    await signInAndExchange(idp, config, browser, app.redirectUri, 'alice', TEST_PASSWORD);
    const silent = await startAuthorization(config, app.redirectUri, { prompt: 'none' });
    const answer = await browser.follow(silent.url.href, {}, app.redirectUri);
    const back = new URL(answer.location!);
    assert.ok(back.searchParams.get('code'));
  });

  it('the log holds no password, code, token or cookie', async () => {
    const browser = new TestBrowser(idp.dispatcher);
    const { callback, tokens } = await signInAndExchange(
      idp,
      config,
      browser,
      app.redirectUri,
      'alice',
      TEST_PASSWORD,
    );
    const log = idp.rawLog();
    assert.ok(log.includes('password accepted'), 'sign-in is logged');
    assert.ok(!log.includes(TEST_PASSWORD), 'password in log');
    assert.ok(!log.includes(app.clientSecret), 'client secret in log');
    assert.ok(!log.includes(callback.searchParams.get('code')!), 'authorization code in log');
    assert.ok(!log.includes(tokens.access_token), 'access token in log');
    assert.ok(!log.includes(tokens.refresh_token!), 'refresh token in log');
    for (const cookie of await browser.jar.getCookies(idp.issuer)) {
      assert.ok(!log.includes(cookie.value), `cookie ${cookie.key} in log`);
    }
    for (const line of idp.logs.filter((entry) => entry['msg'] === 'request')) {
      assert.ok(typeof line['requestId'] === 'string');
    }
  });
});
