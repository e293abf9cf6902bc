import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import { AuditLog } from '../src/security/audit.ts';
import { TestBrowser } from './support/browser.ts';
import { createTestClient, startTestIdp, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import {
  type LogoutReceiver,
  startLogoutReceiver,
  verifyLogoutToken,
} from './support/logout-receiver.ts';
import { enrol, exchange, pageKind, passwordStep } from './support/mfa-flow.ts';
import {
  assertSessionEnded,
  discoverRp,
  signInAndExchange,
  startAuthorization,
} from './support/rp.ts';

type TestClient = Awaited<ReturnType<typeof createTestClient>>;

const MFA_AMR = ['pwd', 'otp', 'mfa'];

/*
 * A user without an authenticator who sets one up while signing in to an app that requires 2FA
 * ends the sessions, grants and refresh tokens that the password alone opened in other browsers,
 * as the account page does. Sessions are kept in Redis, or in the process without REDIS_URL.
 */
for (const storage of ['Redis', 'memory'] as const) {
  describe(`enrolment at sign-in, sessions in ${storage}`, () => {
    let idp: TestIdp;
    let receiver: LogoutReceiver;
    let audit: AuditLog;
    let plainApp: TestClient;
    let strictApp: TestClient;
    let plainConfig: client.Configuration;
    let strictConfig: client.Configuration;
    let userCount = 0;

    before(async () => {
      receiver = await startLogoutReceiver();
      idp = await startTestIdp({
        env: storage === 'memory' ? { REDIS_URL: '' } : {},
        server: { outboundFetch: receiver.outboundFetch },
      });
      const withUri = (name: string) => ({
        backchannelLogoutUri: `${receiver.url}/backchannel/${name}`,
      });
      plainApp = await createTestClient(idp, withUri('plain'));
      strictApp = await createTestClient(idp, { require2fa: true, ...withUri('strict') });
      plainConfig = await discoverRp(idp, plainApp.clientId, plainApp.clientSecret);
      strictConfig = await discoverRp(idp, strictApp.clientId, strictApp.clientSecret);
      audit = new AuditLog(idp.database);
    });

    after(async () => {
      await idp?.close();
      await receiver?.close();
    });

    async function newUser() {
      const username = `enroller${++userCount}`;
      const account = await idp.accounts.create({ username, password: TEST_PASSWORD });

      return { username, id: account.id };
    }

    /** Signs in to the app without 2FA with the password; returns the browser and tokens. */
    async function passwordSession(username: string, browser = new TestBrowser(idp.dispatcher)) {
      const { tokens } = await signInAndExchange(
        idp,
        plainConfig,
        browser,
        plainApp.redirectUri,
        username,
        TEST_PASSWORD,
      );

      return { browser, tokens, sid: String(tokens.claims()!['sid']) };
    }

    /**
     * Signs in to the app that requires 2FA in `browser`, sets up an authenticator when asked,
     * and exchanges the code. Returns the tokens and the page that showed the recovery codes.
     */
    async function enrolAtSignIn(username: string, browser: TestBrowser) {
      const { start, page } = await passwordStep(
        strictConfig,
        browser,
        strictApp.redirectUri,
        username,
        TEST_PASSWORD,
      );
      assert.equal(pageKind(page, strictApp.redirectUri), 'enrol', page.body.slice(0, 300));
      const enrolled = await enrol(browser, page, strictApp.redirectUri);
      assert.equal(
        pageKind(enrolled.page, strictApp.redirectUri),
        'app',
        `${enrolled.page.status} ${enrolled.page.body.slice(0, 600)}`,
      );
      const { tokens, claims } = await exchange(strictConfig, start, enrolled.page);
      assert.deepEqual(claims['amr'], MFA_AMR);

      return { tokens, codesPage: enrolled.codesPage };
    }

    /** Returns the error of a silent authorization for `app` in `browser`, or null for a code. */
    async function silentError(
      browser: TestBrowser,
      app: TestClient,
      config: client.Configuration,
    ) {
      const start = await startAuthorization(config, app.redirectUri, { prompt: 'none' });
      const answer = await browser.request(start.url.href);
      assert.ok(answer.location, `no redirect: ${answer.status} ${answer.body.slice(0, 200)}`);

      return new URL(answer.location).searchParams.get('error');
    }

    /** Checks the logout tokens that arrived since `from`: one per ended session, each valid. */
    async function assertLogoutTokens(
      from: number,
      accountId: string,
      ended: { sid: string }[],
    ): Promise<void> {
      const arrived = receiver.received.slice(from);
      assert.equal(arrived.length, ended.length, 'one logout token per ended session');
      const sids = [];
      for (const entry of arrived) {
        assert.equal(entry.path, '/backchannel/plain');
        const payload = await verifyLogoutToken(idp, entry.token, plainApp.clientId);
        assert.equal(payload.sub, accountId);
        sids.push(payload['sid']);
      }
      assert.deepEqual(sids.sort(), ended.map(({ sid }) => sid).sort());
    }

    /** Returns the `session.ended` rows of an account with what they record. */
    async function sessionEndedRows(accountId: string) {
      const rows = await audit.list({ user: accountId, event: 'session.ended' });

      return rows.map((row) => ({
        reason: row.detail['reason'],
        cause: row.detail['cause'],
        sessions: row.detail['sessions'],
        logoutTokensSent: row.detail['logoutTokensSent'],
        userAgent: row.userAgent,
      }));
    }

    it('ends other browsers’ sessions', async () => {
      const user = await newUser();
      const others = [await passwordSession(user.username), await passwordSession(user.username)];
      const from = receiver.received.length;

      const enrolling = new TestBrowser(idp.dispatcher);
      const { tokens, codesPage } = await enrolAtSignIn(user.username, enrolling);
      assert.match(codesPage.body, /Your other sessions were signed out\./);

      for (const other of others) {
        await assertSessionEnded(plainConfig, other.browser, plainApp.redirectUri, other.tokens);
        // A password session that survived would be asked for the code only.
        const again = await other.browser.follow(
          (await startAuthorization(plainConfig, plainApp.redirectUri)).url.href,
          {},
          plainApp.redirectUri,
        );
        assert.equal(pageKind(again, plainApp.redirectUri), 'login', 'password not asked again');
      }
      await assertLogoutTokens(from, user.id, others);

      // The browser that enrolled stays signed in, and its tokens work.
      assert.equal(await silentError(enrolling, strictApp, strictConfig), null);
      assert.ok(tokens.refresh_token, 'the app got no refresh token');
      const refreshed = await client.refreshTokenGrant(strictConfig, tokens.refresh_token);
      assert.ok(refreshed.access_token);

      const events = (await audit.list({ user: user.id })).map((row) => row.event);
      assert.deepEqual(events, [
        'signin.succeeded',
        'signin.succeeded',
        'mfa.enrolled',
        'session.ended',
        'signin.succeeded',
      ]);
      assert.deepEqual(await sessionEndedRows(user.id), [
        {
          reason: 'revoked',
          cause: 'authenticator_changed',
          sessions: 2,
          logoutTokensSent: 2,
          userAgent: 'idp-test-browser',
        },
      ]);
    });

    it('says nothing when nothing else ended', async () => {
      const user = await newUser();
      const { codesPage } = await enrolAtSignIn(user.username, new TestBrowser(idp.dispatcher));
      assert.doesNotMatch(codesPage.body, /other sessions/);
    });

    it('keeps the enrolling browser’s session', async () => {
      const user = await newUser();
      const enrolling = await passwordSession(user.username);
      const other = await passwordSession(user.username);
      const from = receiver.received.length;

      // The browser already signed in with the password is asked for it again, then enrols.
      await enrolAtSignIn(user.username, enrolling.browser);

      await assertSessionEnded(plainConfig, other.browser, plainApp.redirectUri, other.tokens);
      await assertLogoutTokens(from, user.id, [other]);
      assert.equal(await silentError(enrolling.browser, plainApp, plainConfig), null);
      assert.equal(await silentError(enrolling.browser, strictApp, strictConfig), null);
      assert.ok(enrolling.tokens.refresh_token, 'the app got no refresh token');
      const refreshed = await client.refreshTokenGrant(plainConfig, enrolling.tokens.refresh_token);
      assert.ok(refreshed.access_token);
      const introspected = await client.tokenIntrospection(plainConfig, refreshed.access_token);
      assert.equal(introspected.active, true);
      assert.deepEqual(await sessionEndedRows(user.id), [
        {
          reason: 'revoked',
          cause: 'authenticator_changed',
          sessions: 1,
          logoutTokensSent: 1,
          userAgent: 'idp-test-browser',
        },
      ]);
    });
  });
}
