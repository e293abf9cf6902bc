import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import * as client from 'openid-client';
import { fetch } from 'undici';
import { TestBrowser } from './support/browser.ts';
import {
  createTestClient,
  createTestSetup,
  startTestIdp,
  TEST_PASSWORD,
  type TestIdp,
  type TestSetup,
} from './support/idp.ts';
import { eventually } from './support/wait.ts';
import { runIdp } from './support/cli.ts';
import { discoverRp, signInWithPassword, startAuthorization } from './support/rp.ts';

type Rp = client.Configuration;

async function jwksOf(node: TestIdp): Promise<JSONWebKeySet> {
  const response = await fetch(`${node.url}/jwks`, { dispatcher: node.dispatcher });

  return (await response.json()) as JSONWebKeySet;
}

const kidsOf = async (node: TestIdp) => (await jwksOf(node)).keys.map((key) => key.kid);
const kidOf = (token: string) => decodeProtectedHeader(token).kid;

/** Moves a URL of the issuer to one node, as a load balancer would. */
const via = (node: TestIdp, url: URL | string) => String(url).replace(node.issuer, node.url);

describe('two nodes sharing Postgres and Redis', () => {
  let setup: TestSetup;
  let first: TestIdp;
  let second: TestIdp;
  let app: Awaited<ReturnType<typeof createTestClient>>;
  let rpFirst: Rp;
  let rpSecond: Rp;

  before(async () => {
    setup = await createTestSetup();
    first = await startTestIdp({ setup, env: { IDP_PORT: setup.env['IDP_PORT']! } });
    second = await startTestIdp({ setup });
    app = await createTestClient(first);
    rpFirst = await rpOf(first);
    rpSecond = await rpOf(second);
    await first.accounts.create({ username: 'alice', password: TEST_PASSWORD });
  });

  after(async () => {
    await first?.close();
    await second?.close();
    await setup?.cleanup();
  });

  /** An app that checks ID token signatures against the JWKS of `node`. */
  const rpOf = (node: TestIdp, onRequest?: (url: URL) => void) =>
    discoverRp(node, app.clientId, app.clientSecret, { verifySignatures: true, onRequest });

  /** Signs in through the first node and exchanges the code at `exchangeAt`. */
  async function signIn(browser: TestBrowser, exchangeAt: Rp) {
    const start = await startAuthorization(rpFirst, app.redirectUri);
    const callback = await signInWithPassword(
      browser,
      start,
      app.redirectUri,
      'alice',
      TEST_PASSWORD,
    );

    return client.authorizationCodeGrant(exchangeAt, callback, {
      pkceCodeVerifier: start.verifier,
      expectedState: start.state,
      expectedNonce: start.nonce,
    });
  }

  /** Asks `node` for a code without a login page: the session decides. */
  async function silentAnswer(browser: TestBrowser, node: TestIdp) {
    const silent = await startAuthorization(rpFirst, app.redirectUri, { prompt: 'none' });
    const answer = await browser.follow(via(node, silent.url), {}, app.redirectUri);

    return new URL(answer.location!).searchParams;
  }

  /** Counts the introspection and userinfo lookups that `node` served from its copies. */
  const cacheHits = async (node: TestIdp) => {
    const metric = await node.server.metrics.registry
      .getSingleMetric('idp_token_cache_lookups_total')!
      .get();
    return metric.values.find((value) => value.labels['result'] === 'hit')?.value ?? 0;
  };

  it('sign in on one, exchange and refresh on the other, log out on the first', async () => {
    const browser = new TestBrowser(first.dispatcher);
    const tokens = await signIn(browser, rpSecond);
    assert.ok(tokens.claims()?.sub, 'the second node exchanged the code and the ID token verified');
    const refreshed = await client.refreshTokenGrant(rpSecond, tokens.refresh_token!);
    assert.ok(refreshed.access_token);
    const userinfo = await client.fetchUserInfo(
      rpSecond,
      refreshed.access_token,
      tokens.claims()!.sub,
    );
    assert.equal(userinfo['preferred_username'], 'alice');
    assert.ok(
      (await silentAnswer(browser, second)).get('code'),
      'the session is seen on the second',
    );
    await eventually('userinfo served from the copies', async () => {
      const before = await cacheHits(second);
      await client.fetchUserInfo(rpSecond, refreshed.access_token, tokens.claims()!.sub);
      return (await cacheHits(second)) > before;
    });

    const endSession = client.buildEndSessionUrl(rpFirst, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: 'https://app.example.test/signed-out',
    });
    const confirm = await browser.follow(endSession.href);
    const done = await browser.submit(confirm, { logout: 'yes' }, 'https://app.example.test/');
    assert.equal(done.location, 'https://app.example.test/signed-out');
    assert.equal((await silentAnswer(browser, second)).get('error'), 'login_required');
    // The logout ended the session and revoked its grant, which the second node's copies held.
    const introspected = await client.tokenIntrospection(rpSecond, refreshed.access_token);
    assert.equal(introspected.active, false);
  });

  it('revocation reaches the other node at once', async () => {
    const introspect = async (token: string) =>
      (await client.tokenIntrospection(rpFirst, token)).active;

    // An app of its own, so that the JWKS other tests' apps hold stays as they left it.
    const rp = await rpOf(first);

    // Revoking an access token deletes only that token.
    const revoked = await signIn(new TestBrowser(first.dispatcher), rp);
    await eventually('a read served from the copy', async () => {
      const before = await cacheHits(first);
      assert.equal(await introspect(revoked.access_token), true);
      return (await cacheHits(first)) > before;
    });
    await client.tokenRevocation(rpSecond, revoked.access_token);
    assert.equal(await introspect(revoked.access_token), false);
    await assert.rejects(
      client.fetchUserInfo(rpFirst, revoked.access_token, client.skipSubjectCheck),
      (error: Error & { status?: number }) => error.status === 401,
    );

    // Revoking a refresh token ends its grant, with every access token issued under it.
    const granted = await signIn(new TestBrowser(first.dispatcher), rp);
    await eventually('a read served from the copy', async () => {
      const before = await cacheHits(first);
      assert.equal(await introspect(granted.access_token), true);
      return (await cacheHits(first)) > before;
    });
    await client.tokenRevocation(rpSecond, granted.refresh_token!);
    assert.equal(await introspect(granted.access_token), false);

    // A refresh token used on the second node is spent on the first, for every token_type_hint.
    const rotating = await signIn(new TestBrowser(first.dispatcher), rp);
    await eventually('a read served from the copy', async () => {
      const before = await cacheHits(first);
      assert.equal(await introspect(rotating.refresh_token!), true);
      return (await cacheHits(first)) > before;
    });
    const rotated = await client.refreshTokenGrant(rpSecond, rotating.refresh_token!);
    for (const hint of [undefined, 'refresh_token', 'access_token']) {
      const parameters = hint ? { token_type_hint: hint } : undefined;
      const spent = await client.tokenIntrospection(rpFirst, rotating.refresh_token!, parameters);
      assert.equal(spent.active, false, `the spent refresh token with hint ${hint}`);
    }
    assert.equal(await introspect(rotated.refresh_token!), true);

    // A command run outside both nodes, which keeps no copies, reaches them through Redis too.
    await first.accounts.create({ username: 'carol', password: TEST_PASSWORD });
    const start = await startAuthorization(rpFirst, app.redirectUri);
    const callback = await signInWithPassword(
      new TestBrowser(first.dispatcher),
      start,
      app.redirectUri,
      'carol',
      TEST_PASSWORD,
    );
    const carol = await client.authorizationCodeGrant(rp, callback, {
      pkceCodeVerifier: start.verifier,
      expectedState: start.state,
      expectedNonce: start.nonce,
    });
    await eventually('a read served from the copy', async () => {
      const before = await cacheHits(first);
      assert.equal(await introspect(carol.access_token), true);
      return (await cacheHits(first)) > before;
    });
    const disabled = await runIdp(setup.env, ['users', 'disable', 'carol']);
    assert.equal(disabled.code, 0, disabled.stderr);
    await eventually(
      "carol's token to be inactive",
      async () => (await introspect(carol.access_token)) === false,
      1000,
    );
  });

  it('keys, discovery and clients are the same on both', async () => {
    assert.deepEqual(await jwksOf(first), await jwksOf(second));
    // oidc-provider builds endpoint URLs from the Host header, which a load balancer keeps; here
    // each node is reached on its own port, so the origin is put back before comparing.
    const discovery = async (node: TestIdp) => {
      const response = await fetch(`${node.url}/.well-known/openid-configuration`, {
        dispatcher: node.dispatcher,
      });

      return JSON.parse((await response.text()).replaceAll(node.url, node.issuer)) as unknown;
    };
    assert.deepEqual(await discovery(first), await discovery(second));
    // A client registered after both started works on the second at once.
    const late = await createTestClient(first);
    const rp = await discoverRp(second, late.clientId, late.clientSecret);
    const start = await startAuthorization(rp, late.redirectUri);
    const page = await new TestBrowser(second.dispatcher).follow(
      via(second, start.url),
      {},
      late.redirectUri,
    );
    assert.equal(page.status, 200);
  });

  it('a key rotation reaches both nodes without a restart', async () => {
    const env = { ...setup.env, IDP_KEY_ACTIVATION_DELAY: '6s' };
    const before = await signIn(new TestBrowser(first.dispatcher), rpSecond);
    const oldKid = kidOf(before.id_token!);

    const rotated = await runIdp(env, ['keys', 'rotate']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const nextKid = /RS256 key (\S+) is published and signs from/.exec(rotated.stdout)?.[1];
    assert.ok(nextKid, rotated.stdout);
    assert.match(rotated.stdout, /running nodes were told to reload their keys/);
    await eventually('both nodes to publish the next key', async () => {
      return (await kidsOf(first)).includes(nextKid) && (await kidsOf(second)).includes(nextKid);
    });
    // An app that fetched the JWKS after the rotation verifies the new key's tokens later without
    // fetching it again.
    const jwksFetches: string[] = [];
    const rpLater = await rpOf(second, (url) => {
      if (url.pathname === '/jwks') jwksFetches.push(url.href);
    });
    const waiting = await signIn(new TestBrowser(first.dispatcher), rpLater);
    assert.equal(kidOf(waiting.id_token!), oldKid, 'the next key does not sign yet');
    assert.equal(jwksFetches.length, 1);

    await eventually('the next key to sign on both nodes', async () => {
      const onFirst = await signIn(new TestBrowser(first.dispatcher), await rpOf(first));
      const onSecond = await signIn(new TestBrowser(first.dispatcher), rpLater);

      return kidOf(onFirst.id_token!) === nextKid && kidOf(onSecond.id_token!) === nextKid;
    });
    assert.equal(jwksFetches.length, 1, 'the app verified the new key from its cached JWKS');
    for (const node of [first, second]) {
      const { payload } = await jwtVerify(before.id_token!, createLocalJWKSet(await jwksOf(node)), {
        issuer: first.issuer,
        audience: app.clientId,
      });
      assert.equal(payload.sub, before.claims()!.sub, 'the retired key still verifies');
    }
    const listed = await runIdp(env, ['keys', 'list', '--json']);
    const states = Object.fromEntries(
      listed.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { kid: string; state: string })
        .map((key) => [key.kid, key.state]),
    );
    assert.equal(states[oldKid!], 'retired');
    assert.equal(states[nextKid], 'active');

    // --activate signs at once: an app with a JWKS fetched in the last minute rejects the new
    // key until it fetches again, which is why the delay is the normal way.
    const activated = await runIdp(env, ['keys', 'rotate', '--activate']);
    assert.equal(activated.code, 0, activated.stderr);
    const urgentKid = /RS256 key (\S+) signs from now/.exec(activated.stdout)?.[1];
    assert.ok(urgentKid, activated.stdout);
    await eventually('both nodes to sign with the activated key', async () => {
      const fresh = await rpOf(second);
      const tokens = await signIn(new TestBrowser(first.dispatcher), fresh);

      return kidOf(tokens.id_token!) === urgentKid && (await kidsOf(first)).includes(urgentKid);
    });
    await assert.rejects(signIn(new TestBrowser(first.dispatcher), rpLater), /no applicable keys/);
  });

  it('a node with a new cookie key first accepts cookies signed with the old one', async () => {
    const third = await startTestIdp({
      setup,
      env: {
        IDP_COOKIE_KEYS: `${randomBytes(32).toString('base64url')},${setup.env['IDP_COOKIE_KEYS']}`,
      },
    });
    try {
      const browser = new TestBrowser(first.dispatcher);
      await signIn(browser, rpFirst);
      assert.ok((await silentAnswer(browser, third)).get('code'));
    } finally {
      await third.close();
    }
  });
});
