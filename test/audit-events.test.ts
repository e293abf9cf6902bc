import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import { Agent } from 'undici';
import { AUDIT_EVENTS, AuditLog, type AuditRecord } from '../src/security/audit.ts';
import { DEFAULT_LOCKOUT_POLICY } from '../src/security/rate-limit.ts';
import { type PageResponse, TestBrowser } from './support/browser.ts';
import { runIdp } from './support/cli.ts';
import { startTestIdp, type TestIdp } from './support/idp.ts';
import { type LogoutReceiver, startLogoutReceiver } from './support/logout-receiver.ts';
import {
  enrol,
  exchange,
  pageKind,
  passwordStep,
  readRecoveryCodes,
  submitCode,
} from './support/mfa-flow.ts';
import { discoverRp } from './support/rp.ts';
import { referenceHotp, referenceTotp } from './support/totp.ts';

const PASSWORD = 'correct horse battery staple';
const NEW_PASSWORD = 'a second long passphrase';
const CLIENT_SECRET = 'a-client-secret-of-the-audit-test-0123456789';
const REDIRECT_URI = 'https://app.example.test/callback';
// alice fails four times across the test, so her account must stay below the lock.
const POLICY = { ...DEFAULT_LOCKOUT_POLICY, lockAfter: 6, delayAfter: 100, ipLimit: 20 };

/**
 * Drives every audited action through the command line and the pages of one idp, then reads the
 * audit log: each event appears, with the fields it should have and no secret.
 */
describe('audit events', () => {
  let idp: TestIdp;
  let receiver: LogoutReceiver;
  let env: NodeJS.ProcessEnv;
  let config: client.Configuration;
  let rows: AuditRecord[] = [];
  const secrets: string[] = [PASSWORD, NEW_PASSWORD, CLIENT_SECRET, 'wrong password'];
  const browsers: TestBrowser[] = [];
  const agents: Agent[] = [];

  const idpCommand = async (args: string[], input = '') => {
    const result = await runIdp(env, args, input);
    assert.equal(result.code, 0, `idp ${args.join(' ')}: ${result.stderr}`);
  };

  const newBrowser = (dispatcher: Agent = idp.dispatcher) => {
    const browser = new TestBrowser(dispatcher);
    browsers.push(browser);

    return browser;
  };

  const signInPage = (username: string, password: string, browser = newBrowser()) =>
    passwordStep(config, browser, REDIRECT_URI, username, password).then((result) => ({
      ...result,
      browser,
    }));

  /** Opens the recovery-code page of the sign-in whose code page is `page`. */
  const recoveryPage = (browser: TestBrowser, page: PageResponse) =>
    browser.follow(`${page.url.replace(/\/$/, '')}/recovery`);

  before(async () => {
    receiver = await startLogoutReceiver();
    idp = await startTestIdp({
      server: { lockoutPolicy: POLICY, outboundFetch: receiver.outboundFetch },
    });
    env = { PATH: process.env['PATH'], ...idp.setup.env, NODE_EXTRA_CA_CERTS: receiver.caFile };

    // Accounts, the app, a setting and a key, from the command line.
    await idpCommand(['users', 'create', 'alice', '--password-stdin'], PASSWORD);
    await idpCommand(['users', 'create', 'bob', '--password-stdin'], PASSWORD);
    await idpCommand(
      [
        'clients',
        'create',
        '--client-id',
        'audited-app',
        '--redirect-uri',
        REDIRECT_URI,
        '--post-logout-redirect-uri',
        'https://app.example.test/',
        '--backchannel-logout-uri',
        `${receiver.url}/backchannel`,
        '--client-secret-stdin',
      ],
      CLIENT_SECRET,
    );
    await idpCommand(['clients', 'update', 'audited-app', '--name', 'Audited App']);
    await idpCommand(['keys', 'rotate']);
    config = await discoverRp(idp, 'audited-app', CLIENT_SECRET);

    // Failed passwords: wrong, unknown user, disabled account.
    await signInPage('alice', 'wrong password');
    await signInPage('nobody', PASSWORD);
    await idpCommand(['users', 'disable', 'alice']);
    await signInPage('alice', PASSWORD);
    await idpCommand(['users', 'enable', 'alice']);

    // With 2FA required, alice sets up TOTP during sign-in.
    await idpCommand(['settings', 'set', 'require-2fa', 'on']);
    const first = await signInPage('alice', PASSWORD);
    assert.equal(pageKind(first.page, REDIRECT_URI), 'enrol');
    const enrolled = await enrol(first.browser, first.page, REDIRECT_URI);
    const { authenticator, codes } = enrolled;
    const { tokens } = await exchange(config, first.start, enrolled.page);
    secrets.push(...codes, tokens.access_token, tokens.refresh_token!, tokens.id_token!);

    // A sign-in with a recovery code.
    const second = await signInPage('alice', PASSWORD);
    const recovery = await recoveryPage(second.browser, second.page);
    const passed = await submitCode(second.browser, recovery, codes[0]!, REDIRECT_URI);
    assert.equal(pageKind(passed, REDIRECT_URI), 'codes');
    const back = await second.browser.submit(passed, {}, REDIRECT_URI);
    assert.equal(pageKind(back, REDIRECT_URI), 'app');

    // A wrong code, then the code used at enrolment again.
    const third = await signInPage('alice', PASSWORD);
    const wrongCode = referenceTotp(authenticator.key, Date.now() / 1000 - 3600);
    const usedCode = referenceHotp(authenticator.key, BigInt(authenticator.lastStep));
    secrets.push(usedCode);
    for (const code of [wrongCode, usedCode]) {
      assert.equal((await submitCode(third.browser, third.page, code, REDIRECT_URI)).status, 400);
    }

    // The account page: sign in with a recovery code, then make new recovery codes.
    const accountBrowser = newBrowser();
    const accountLogin = await accountBrowser.follow(`${idp.issuer}/account`);
    const accountCode = await accountBrowser.submit(accountLogin, {
      username: 'alice',
      password: PASSWORD,
    });
    const accountRecovery = await recoveryPage(accountBrowser, accountCode);
    const accountPassed = await accountBrowser.submit(accountRecovery, { code: codes[1]! });
    const accountPage = await accountBrowser.submit(accountPassed, {});
    assert.equal(new URL(accountPage.url).pathname, '/account', accountPage.body.slice(0, 300));
    const regenerated = await accountBrowser.submit(
      accountPage,
      { password: PASSWORD, code: codes[2]! },
      undefined,
      '/account/recovery-codes',
    );
    assert.equal(regenerated.status, 200, regenerated.body.slice(0, 300));
    secrets.push(...readRecoveryCodes(regenerated));

    // bob is locked by wrong passwords, rejected while locked, and unlocked by a command.
    for (let i = 0; i < POLICY.lockAfter; i++) await signInPage('bob', 'wrong password');
    await signInPage('bob', PASSWORD);
    await idpCommand(['users', 'unlock', 'bob']);

    // One address tries many accounts until it is rejected.
    const agent = new Agent({
      localAddress: '127.0.0.9',
      connect: { ca: idp.certificates.caCert },
    });
    agents.push(agent);
    for (let i = 0; i <= POLICY.ipLimit; i++) {
      await signInPage(`sprayed-${i}`, 'a guessed password', newBrowser(agent));
    }
    secrets.push('a guessed password');

    // RP-initiated logout of the first session, then a password change, a 2FA reset and the
    // removal of the app from the command line.
    const endSession = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: 'https://app.example.test/',
    });
    const confirm = await first.browser.follow(endSession.href);
    await first.browser.submit(confirm, { logout: 'yes' }, 'https://app.example.test/');
    await idpCommand(['users', 'set-password', 'alice', '--password-stdin'], NEW_PASSWORD);
    await idpCommand(['users', 'reset-2fa', 'alice']);
    await idpCommand(['settings', 'set', 'require-2fa', 'off']);
    await idpCommand(['clients', 'delete', 'audited-app']);

    for (const browser of browsers) {
      for (const cookie of await browser.jar.getCookies(idp.issuer)) secrets.push(cookie.value);
    }
    rows = await new AuditLog(idp.database).list();
  });

  after(async () => {
    await Promise.all(agents.map((agent) => agent.close()));
    await idp?.close();
    await receiver?.close();
  });

  const eventsNamed = (event: string) => rows.filter((row) => row.event === event);

  it('every event name has a row', () => {
    const seen = new Set(rows.map((row) => row.event));
    for (const name of Object.keys(AUDIT_EVENTS)) assert.ok(seen.has(name), `no ${name} row`);
  });

  it('failed sign-ins name each reason', () => {
    const reasons = new Set(eventsNamed('signin.failed').map((row) => row.detail['reason']));
    for (const reason of [
      'wrong_password',
      'unknown_user',
      'disabled',
      'locked',
      'rate_limited',
      'wrong_code',
      'replayed_code',
    ]) {
      assert.ok(reasons.has(reason), `no signin.failed with reason ${reason}`);
    }
    const causes = eventsNamed('session.ended').map((row) => row.detail['reason']);
    assert.ok(causes.includes('logout'), `causes: ${causes.join(', ')}`);
    assert.ok(causes.includes('revoked'), `causes: ${causes.join(', ')}`);
  });

  it('rows from pages carry the request facts; rows from commands the actor', () => {
    for (const row of rows) {
      const fromCommand = typeof row.detail['actor'] === 'string';
      if (fromCommand) {
        assert.match(String(row.detail['actor']), /^cli:/, row.event);
        assert.equal(row.ip, null, row.event);
        continue;
      }
      assert.ok(['127.0.0.1', '127.0.0.9'].includes(row.ip ?? ''), `${row.event} ip ${row.ip}`);
      assert.equal(row.userAgent, 'idp-test-browser', row.event);
      assert.match(row.requestId ?? '', /^[0-9a-f-]{36}$/, row.event);
    }
    const alice = rows.find((row) => row.event === 'user.created' && row.username === 'alice');
    for (const event of ['mfa.enrolled', 'mfa.recovery_code_used', 'password.changed']) {
      const row = eventsNamed(event)[0];
      assert.equal(row?.accountId, alice?.accountId, event);
      assert.equal(row?.username, 'alice', event);
    }
    for (const event of ['client.created', 'client.updated', 'client.deleted']) {
      assert.equal(eventsNamed(event)[0]?.clientId, 'audited-app', event);
    }
    assert.equal(eventsNamed('signin.succeeded')[0]?.clientId, 'audited-app');
    assert.deepEqual(eventsNamed('setting.changed')[0]?.detail['setting'], 'require-2fa');
    const unknown = eventsNamed('signin.failed').find(
      (row) => row.detail['reason'] === 'unknown_user',
    );
    assert.ok(unknown);
    assert.equal(unknown.accountId, null);
    assert.equal(unknown.username, null);
  });

  it('no row holds a secret, and the chain verifies', async () => {
    const everything = JSON.stringify(rows);
    for (const secret of secrets) {
      assert.ok(
        !everything.includes(secret),
        `a secret is in the audit log: ${secret.slice(0, 4)}…`,
      );
    }
    assert.equal((await new AuditLog(idp.database).verify()).ok, true);
  });
});
