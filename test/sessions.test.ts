import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import * as client from 'openid-client';
import { AuditLog } from '../src/security/audit.ts';
import { TestBrowser } from './support/browser.ts';
import { createTestClient, startTestIdp, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import {
  BACKCHANNEL_EVENT,
  type LogoutReceiver,
  startLogoutReceiver,
  verifyLogoutToken,
} from './support/logout-receiver.ts';
import { discoverRp, signInAndExchange, startAuthorization } from './support/rp.ts';

/** Asks for a code without showing a page; returns the error, or undefined when a code came. */
async function silentSignIn(
  browser: TestBrowser,
  config: client.Configuration,
  redirectUri: string,
): Promise<string | undefined> {
  const start = await startAuthorization(config, redirectUri, { prompt: 'none' });
  const answer = await browser.follow(start.url.href, {}, redirectUri);
  const back = new URL(answer.location ?? 'https://missing.test/');
  if (back.searchParams.get('code')) return undefined;

  return back.searchParams.get('error') ?? `no redirect (${answer.status})`;
}

/** Returns the model of an oidc-provider key, such as Session, from its Redis key. */
function modelOf(key: string, prefix: string): string {
  const rest = key.slice(prefix.length).replace(/^oidc:/, '');

  return rest.startsWith('uid:') ? 'Session' : (rest.split(':')[0] ?? '');
}

describe('session lifetimes', () => {
  const IDLE = 3;
  const MAX = 7;
  let idp: TestIdp;
  let app: Awaited<ReturnType<typeof createTestClient>>;
  let config: client.Configuration;

  before(async () => {
    idp = await startTestIdp({ env: { IDP_SESSION_IDLE: `${IDLE}s`, IDP_SESSION_MAX: `${MAX}s` } });
    app = await createTestClient(idp);
    config = await discoverRp(idp, app.clientId, app.clientSecret);
    await idp.accounts.create({ username: 'sessions', password: TEST_PASSWORD });
  });

  after(async () => {
    await idp?.close();
  });

  const signIn = async () => {
    const browser = new TestBrowser(idp.dispatcher);
    const result = await signInAndExchange(
      idp,
      config,
      browser,
      app.redirectUri,
      'sessions',
      TEST_PASSWORD,
    );

    return { browser, ...result };
  };

  it('every Redis key has a TTL within its lifetime', async () => {
    const { browser } = await signIn();
    const keys = await idp.testRedis.keys();
    const models = new Set(keys.map((key) => modelOf(key, idp.testRedis.prefix)));
    for (const model of ['Session', 'Grant', 'AccessToken', 'RefreshToken']) {
      assert.ok(models.has(model), `no ${model} key`);
    }
    for (const key of keys) {
      const ttl = await idp.testRedis.redis.pttl(key);
      const limit = modelOf(key, idp.testRedis.prefix) === 'Session' ? IDLE : MAX;
      assert.ok(ttl > 0, `${key} has no TTL (${ttl})`);
      assert.ok(ttl <= limit * 1000, `${key} lives ${ttl} ms, more than ${limit} s`);
    }
    const cookie = (await browser.jar.getCookies(idp.issuer)).find((c) => c.key === '_session');
    assert.ok(cookie?.expires instanceof Date, 'the session cookie has no expiry');
    assert.ok((cookie.expires as Date).getTime() <= Date.now() + IDLE * 1000 + 1000);
  });

  it('a refresh token ends with the absolute lifetime', async () => {
    const { tokens } = await signIn();
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!);
    assert.ok(refreshed.refresh_token, 'rotation works within the lifetime');
    await sleep((MAX + 1.5) * 1000);
    // The rotated token carries the first issue time, so rotating did not extend it.
    await assert.rejects(client.refreshTokenGrant(config, refreshed.refresh_token!), {
      error: 'invalid_grant',
    });
  });
});

describe('back-channel logout', () => {
  let idp: TestIdp;
  let receiver: LogoutReceiver;

  before(async () => {
    receiver = await startLogoutReceiver();
    idp = await startTestIdp({ server: { outboundFetch: receiver.outboundFetch } });
    await idp.accounts.create({ username: 'logout', password: TEST_PASSWORD });
  });

  after(async () => {
    await idp?.close();
    await receiver?.close();
  });

  it('RP-initiated logout posts a valid logout token to every app of the session', async () => {
    const withUri = (name: string) => ({
      backchannelLogoutUri: `${receiver.url}/backchannel/${name}`,
    });
    const first = await createTestClient(idp, withUri('first'));
    const second = await createTestClient(idp, withUri('second'));
    const plain = await createTestClient(idp);
    const browser = new TestBrowser(idp.dispatcher);
    const sessions = new Map<string, { sid: string; sub: string; config: client.Configuration }>();
    let idTokenHint = '';
    for (const app of [first, second, plain]) {
      const config = await discoverRp(idp, app.clientId, app.clientSecret);
      // The first app shows the login page; the others find the session and skip it.
      const start = await startAuthorization(config, app.redirectUri);
      let page = await browser.follow(start.url.href, {}, app.redirectUri);
      if (!page.location) {
        page = await browser.submit(
          page,
          { username: 'logout', password: TEST_PASSWORD },
          app.redirectUri,
        );
      }
      const tokens = await client.authorizationCodeGrant(config, new URL(page.location!), {
        pkceCodeVerifier: start.verifier,
        expectedState: start.state,
        expectedNonce: start.nonce,
      });
      const claims = tokens.claims()!;
      sessions.set(app.clientId, { sid: String(claims['sid']), sub: claims.sub, config });
      if (app === first) idTokenHint = tokens.id_token!;
    }

    const endSession = client.buildEndSessionUrl(sessions.get(first.clientId)!.config, {
      id_token_hint: idTokenHint,
      post_logout_redirect_uri: 'https://app.example.test/signed-out',
    });
    const confirm = await browser.follow(endSession.href);
    assert.equal(confirm.status, 200);
    const done = await browser.submit(confirm, { logout: 'yes' }, 'https://app.example.test/');
    assert.equal(done.location, 'https://app.example.test/signed-out');

    assert.deepEqual(receiver.received.map((entry) => entry.path).sort(), [
      '/backchannel/first',
      '/backchannel/second',
    ]);
    for (const [app, path] of [
      [first, '/backchannel/first'],
      [second, '/backchannel/second'],
    ] as const) {
      const { token } = receiver.received.find((entry) => entry.path === path)!;
      assert.equal(decodeProtectedHeader(token).typ, 'logout+jwt');
      const payload = await verifyLogoutToken(idp, token, app.clientId);
      const session = sessions.get(app.clientId)!;
      assert.equal(payload.sub, session.sub);
      assert.equal(payload['sid'], session.sid);
      assert.deepEqual((payload['events'] as Record<string, unknown>)[BACKCHANNEL_EVENT], {});
      assert.equal(payload['nonce'], undefined);
      assert.ok(payload.jti);
    }

    // The session is gone, and the logout is in the audit log.
    const { config } = sessions.get(first.clientId)!;
    assert.equal(await silentSignIn(browser, config, first.redirectUri), 'login_required');
    const [ended] = await new AuditLog(idp.database).list({ event: 'session.ended' });
    assert.equal(ended?.accountId, sessions.get(first.clientId)?.sub);
    assert.equal(ended?.clientId, first.clientId);
    assert.deepEqual(
      { reason: ended?.detail['reason'], scope: ended?.detail['scope'] },
      { reason: 'logout', scope: 'all' },
    );
    assert.equal(ended?.ip, '127.0.0.1');

    // No session, grant or token of the user is left in Redis.
    const left = (await idp.testRedis.keys())
      .map((key) => modelOf(key, idp.testRedis.prefix))
      .filter((model) => model !== 'Interaction');
    assert.deepEqual(left, []);
  });
});
