import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AuditLog } from '../src/security/audit.ts';
import { TestBrowser } from './support/browser.ts';
import { runIdp } from './support/cli.ts';
import { type IdpFixture, openIdpFixture, type TestRp } from './support/fixture.ts';
import { createTestClient, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import {
  type LogoutReceiver,
  startLogoutReceiver,
  verifyLogoutToken,
} from './support/logout-receiver.ts';
import { assertSessionEnded, discoverRp, signInAndExchange } from './support/rp.ts';

describe('ending all of a user’s sessions', () => {
  let fixture: IdpFixture<'first' | 'second'>;
  let idp: TestIdp;
  let receiver: LogoutReceiver;
  let apps: Record<'first' | 'second', TestRp>;
  let env: NodeJS.ProcessEnv;
  let audit: AuditLog;

  before(async () => {
    receiver = await startLogoutReceiver();
    const withUri = (name: string) => ({
      backchannelLogoutUri: `${receiver.url}/backchannel/${name}`,
    });
    fixture = await openIdpFixture({
      idp: { server: { outboundFetch: receiver.outboundFetch } },
      clients: { first: withUri('first'), second: withUri('second') },
    });
    idp = fixture.idp;
    apps = fixture.clients;
    // Commands reach the same database and Redis, and trust the relying app's authority.
    env = { PATH: process.env['PATH'], ...idp.setup.env, NODE_EXTRA_CA_CERTS: receiver.caFile };
    audit = new AuditLog(idp.database);
  });

  after(async () => {
    await fixture?.close();
    await receiver?.close();
  });

  /** Signs the user in to both apps, each in a browser of its own (two idp sessions). */
  async function signInEverywhere(username: string) {
    const sessions = [];
    for (const app of [apps.first, apps.second]) {
      const config = app.config;
      const browser = new TestBrowser(idp.dispatcher);
      const { tokens } = await signInAndExchange(
        idp,
        config,
        browser,
        app.redirectUri,
        username,
        TEST_PASSWORD,
      );
      sessions.push({ app, config, browser, tokens, sid: String(tokens.claims()!['sid']) });
    }

    return sessions;
  }

  /** Checks that a session and its tokens no longer work anywhere. */
  function assertEnded(session: Awaited<ReturnType<typeof signInEverywhere>>[number]) {
    const { app, config, browser, tokens } = session;

    return assertSessionEnded(config, browser, app.redirectUri, tokens);
  }

  /** Checks the logout tokens that arrived since `from`: one per session, each valid. */
  async function assertLogoutTokens(
    from: number,
    sessions: Awaited<ReturnType<typeof signInEverywhere>>,
  ) {
    const arrived = receiver.received.slice(from);
    assert.equal(arrived.length, sessions.length, 'one logout token per app session');
    for (const session of sessions) {
      const name = session.app === apps.first ? 'first' : 'second';
      const entry = arrived.find((item) => item.path === `/backchannel/${name}`);
      assert.ok(entry, `no logout token for the ${name} app`);
      const payload = await verifyLogoutToken(idp, entry.token, session.app.clientId);
      assert.equal(payload.sub, session.tokens.claims()!.sub);
      assert.equal(payload['sid'], session.sid);
    }
  }

  it('a password change ends sessions, grants and tokens on every node', async () => {
    const user = await idp.accounts.create({ username: 'changer', password: TEST_PASSWORD });
    const sessions = await signInEverywhere('changer');
    const from = receiver.received.length;

    const result = await runIdp(
      env,
      ['users', 'set-password', 'changer', '--password-stdin'],
      'another long passphrase\n',
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^password of changer changed\nended \d+ session\(s\)/);

    for (const session of sessions) await assertEnded(session);
    await assertLogoutTokens(from, sessions);
    const keys = await idp.testRedis.keys();
    assert.ok(!keys.some((key) => key.includes(user.id)), 'a key of the user is left in Redis');

    const [changed, ended] = await audit
      .list({ user: 'changer', since: new Date(0) })
      .then((rows) =>
        ['password.changed', 'session.ended'].map((event) =>
          rows.find((row) => row.event === event),
        ),
      );
    assert.equal(changed?.accountId, user.id);
    assert.match(String(changed?.detail['actor']), /^cli:/);
    assert.deepEqual(
      [ended?.detail['reason'], ended?.detail['cause'], ended?.detail['sessions']],
      ['revoked', 'password_changed', 2],
    );
    assert.equal(ended?.detail['logoutTokensSent'], 2);
  });

  it('disabling a user ends the sessions and tells the apps', async () => {
    await idp.accounts.create({ username: 'leaver', password: TEST_PASSWORD });
    const sessions = await signInEverywhere('leaver');
    const from = receiver.received.length;

    const result = await runIdp(env, ['users', 'disable', 'leaver']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^user leaver disabled\nended \d+ session\(s\)/);
    for (const session of sessions) await assertEnded(session);
    await assertLogoutTokens(from, sessions);
    const ended = (await audit.list({ user: 'leaver', event: 'session.ended' }))[0];
    assert.equal(ended?.detail['cause'], 'disabled');
  });

  it('a 2FA reset ends the sessions and is recorded', async () => {
    const user = await idp.accounts.create({ username: 'resetter', password: TEST_PASSWORD });
    const sessions = await signInEverywhere('resetter');
    const from = receiver.received.length;

    const result = await runIdp(env, ['users', 'reset-2fa', 'resetter']);
    assert.equal(result.code, 0, result.stderr);
    for (const session of sessions) await assertEnded(session);
    await assertLogoutTokens(from, sessions);
    const rows = await audit.list({ user: user.id });
    assert.deepEqual(
      rows.map((row) => [row.event, row.detail['cause'] ?? null]),
      [
        ['signin.succeeded', null],
        ['signin.succeeded', null],
        ['mfa.reset', null],
        ['session.ended', 'mfa_reset'],
      ],
    );
  });

  it('an unreachable back-channel URI does not stop the change', async () => {
    const broken = await createTestClient(idp, {
      backchannelLogoutUri: 'https://127.0.0.1:9/backchannel',
    });
    await idp.accounts.create({ username: 'unlucky', password: TEST_PASSWORD });
    const config = await discoverRp(idp, broken.clientId, broken.clientSecret);
    const browser = new TestBrowser(idp.dispatcher);
    await signInAndExchange(idp, config, browser, broken.redirectUri, 'unlucky', TEST_PASSWORD);

    const result = await runIdp(
      env,
      ['users', 'set-password', 'unlucky', '--password-stdin'],
      'another long passphrase\n',
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /back-channel logout failed/);
    const ended = (await audit.list({ user: 'unlucky', event: 'session.ended' }))[0];
    assert.deepEqual(
      [ended?.detail['logoutTokensSent'], ended?.detail['logoutTokensFailed']],
      [0, 1],
    );
  });
});
