import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type * as client from 'openid-client';
import { Agent, fetch } from 'undici';
import { INVALID_CREDENTIALS } from '../src/interactions/login.ts';
import { INVALID_CODE } from '../src/interactions/second-factor.ts';
import { AuditLog, type AuditRecord } from '../src/security/audit.ts';
import { DEFAULT_LOCKOUT_POLICY, RedisRateLimiter } from '../src/security/rate-limit.ts';
import { alertText, type PageResponse, TestBrowser } from './support/browser.ts';
import { runIdp } from './support/cli.ts';
import { createTestClient, startTestIdp, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import { enrolInDatabase, pageKind, passwordStep, submitCode } from './support/mfa-flow.ts';
import { discoverRp, startAuthorization } from './support/rp.ts';
import { referenceTotp } from './support/totp.ts';

const POLICY = {
  ...DEFAULT_LOCKOUT_POLICY,
  baseDelayMs: 50,
  maxDelayMs: 400,
  // Long enough that no lock ends during a test on a busy machine.
  lockMs: 60_000,
  bypassIntervalMs: 1500,
  // Every test signs in from 127.0.0.1; the address limit has its own test.
  ipLimit: 1000,
};

/**
 * Starts an idp with the given policy and users before the suite, and returns the helpers of the
 * tests; their handles are set once the suite's `before` hook has run.
 */
function lockoutFixture(policy: typeof POLICY, usernames: string[]) {
  const agents: Agent[] = [];
  const fixture = {
    idp: undefined as unknown as TestIdp,
    app: undefined as unknown as Awaited<ReturnType<typeof createTestClient>>,
    config: undefined as unknown as client.Configuration,
    limiter: undefined as unknown as RedisRateLimiter,
    audit: undefined as unknown as AuditLog,

    /** Returns a browser that connects from another loopback address, as another computer would. */
    browserFrom(localAddress: string) {
      const agent = new Agent({ localAddress, connect: { ca: fixture.idp.certificates.caCert } });
      agents.push(agent);

      return new TestBrowser(agent);
    },

    async loginPage(browser: TestBrowser) {
      const start = await startAuthorization(fixture.config, fixture.app.redirectUri);
      const page = await browser.follow(start.url.href, {}, fixture.app.redirectUri);
      assert.equal(page.status, 200, page.body.slice(0, 200));

      return page;
    },

    async tryPassword(browser: TestBrowser, username: string, password: string) {
      const page = await fixture.loginPage(browser);

      return browser.submit(page, { username, password }, fixture.app.redirectUri);
    },

    signedIn: (response: PageResponse) =>
      response.location?.startsWith(fixture.app.redirectUri) === true,

    eventsOf: (username: string): Promise<AuditRecord[]> => fixture.audit.list({ user: username }),

    async lockAccount(browser: TestBrowser, username: string) {
      for (let i = 0; i < policy.lockAfter; i++) {
        const response = await fixture.tryPassword(browser, username, 'wrong password');
        assertRejected(response, `failure ${i + 1}`);
      }
      assert.equal((await fixture.limiter.status(username)).locked, true);
    },
  };

  before(async () => {
    fixture.idp = await startTestIdp({ server: { lockoutPolicy: policy } });
    fixture.app = await createTestClient(fixture.idp);
    fixture.config = await discoverRp(fixture.idp, fixture.app.clientId, fixture.app.clientSecret);
    const { redis, prefix } = fixture.idp.testRedis;
    fixture.limiter = new RedisRateLimiter(redis, prefix, policy);
    fixture.audit = new AuditLog(fixture.idp.database);
    for (const username of usernames) {
      await fixture.idp.accounts.create({ username, password: TEST_PASSWORD });
    }
  });

  after(async () => {
    await Promise.all(agents.map((agent) => agent.close()));
    await fixture.idp?.close();
  });

  return fixture;
}

function assertRejected(response: PageResponse, what: string): void {
  assert.equal(response.status, 400, what);
  assert.equal(alertText(response.body), INVALID_CREDENTIALS, what);
}

describe('sign-in lockout', () => {
  const fixture = lockoutFixture(POLICY, ['parallel', 'dana', 'spoofed', 'victim']);
  const { browserFrom, loginPage, tryPassword, signedIn, eventsOf, lockAccount } = fixture;

  // Reads idp_account_locks_total from the metrics page, which the main port serves by default.
  const lockCount = async () => {
    const response = await fetch(new URL('/metrics', fixture.idp.issuer), {
      dispatcher: fixture.idp.dispatcher,
    });
    const text = await response.text();

    return Number(/^idp_account_locks_total (\d+)$/m.exec(text)?.[1]);
  };

  it('50 parallel wrong passwords count as 50 and lock the account once', async () => {
    const browser = new TestBrowser(fixture.idp.dispatcher);
    const page = await loginPage(browser);
    const responses = await Promise.all(
      Array.from({ length: 50 }, () =>
        browser.submit(page, { username: 'parallel', password: 'wrong password' }),
      ),
    );
    for (const response of responses) assertRejected(response, 'parallel attempt');
    const status = await fixture.limiter.status('parallel');
    assert.equal(status.failures, 50);
    assert.equal(status.locked, true);

    const events = await eventsOf('parallel');
    const failures = events.filter((event) => event.event === 'signin.failed');
    assert.equal(failures.length, 50);
    const checked = failures.filter((event) => event.detail['reason'] === 'wrong_password');
    assert.ok(checked.length <= POLICY.lockAfter, `${checked.length} passwords were checked`);
    assert.equal(events.filter((event) => event.event === 'account.locked').length, 1);

    // The right password from the same address is refused with the same message.
    assertRejected(await tryPassword(browser, 'parallel', TEST_PASSWORD), 'right password');
  });

  it('idp users unlock clears the lock at once', async () => {
    const browser = new TestBrowser(fixture.idp.dispatcher);
    const locksBefore = await lockCount();
    await lockAccount(browser, 'dana');
    assert.equal(await lockCount(), locksBefore + 1);
    const env = { PATH: process.env['PATH'], ...fixture.idp.setup.env };
    const result = await runIdp(env, ['users', 'unlock', 'DANA']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'user dana unlocked (was locked, 10 failure(s) cleared)\n');
    assert.deepEqual(await fixture.limiter.status('dana'), {
      failures: 0,
      locked: false,
      lockRemainingMs: 0,
    });
    assert.ok(signedIn(await tryPassword(browser, 'dana', TEST_PASSWORD)), 'after unlock');

    const events = await eventsOf('dana');
    const locked = events.find((event) => event.event === 'account.locked');
    const unlocked = events.find((event) => event.event === 'account.unlocked');
    assert.equal(locked?.outcome, 'success');
    assert.equal(locked?.ip, '127.0.0.1');
    assert.equal(locked?.detail['lockSeconds'], POLICY.lockMs / 1000);
    assert.deepEqual(unlocked?.detail['wasLocked'], true);
    assert.match(String(unlocked?.detail['actor']), /^cli:/);

    const again = await runIdp(env, ['users', 'unlock', 'dana']);
    assert.equal(again.stdout, 'user dana had no failures or lock\n');
  });

  it('a spoofed X-Forwarded-For outside proxy mode changes nothing', async () => {
    const browser = new TestBrowser(fixture.idp.dispatcher);
    const forged = ['203.0.113.1', '198.51.100.2, 203.0.113.3', 'junk', '::1', '10.0.0.1, ,x'];
    for (let i = 0; i < POLICY.lockAfter; i++) {
      browser.headers['x-forwarded-for'] = forged[i % forged.length] as string;
      assertRejected(await tryPassword(browser, 'spoofed', 'wrong password'), `failure ${i + 1}`);
    }
    // Every failure counted against the account and against the real address.
    assert.equal((await fixture.limiter.status('spoofed')).locked, true);
    const ips = new Set((await eventsOf('spoofed')).map((event) => event.ip));
    assert.deepEqual([...ips], ['127.0.0.1']);
    const keys = await fixture.idp.testRedis.keys();
    assert.ok(!keys.some((key) => /203\.0\.113|198\.51\.100|junk|10\.0\.0\.1/.test(key)));

    // A fresh forged address does not make the attacker's address look clean.
    browser.headers['x-forwarded-for'] = '192.0.2.77';
    assertRejected(await tryPassword(browser, 'spoofed', TEST_PASSWORD), 'forged clean address');
  });

  it('a victim under attack from one address signs in from another', async () => {
    const attacker = new TestBrowser(fixture.idp.dispatcher);
    await lockAccount(attacker, 'victim');
    assertRejected(
      await tryPassword(attacker, 'victim', TEST_PASSWORD),
      'attacker, right password',
    );

    const victim = browserFrom('127.0.0.2');
    const started = Date.now();
    const response = await tryPassword(victim, 'victim', TEST_PASSWORD);
    assert.ok(signedIn(response), `victim refused: ${alertText(response.body) ?? response.status}`);
    assert.ok(Date.now() - started < POLICY.bypassIntervalMs + 3000, 'waited too long');
    // The lock still stands for everyone else.
    assert.equal((await fixture.limiter.status('victim')).locked, true);

    // A wrong password from a third, clean address is refused and marks that address.
    const third = browserFrom('127.0.0.3');
    assertRejected(await tryPassword(third, 'victim', 'wrong password'), 'third address');
    await sleep(POLICY.bypassIntervalMs);
    assertRejected(await tryPassword(third, 'victim', TEST_PASSWORD), 'third address again');

    const success = (await eventsOf('victim')).find((event) => event.event === 'signin.succeeded');
    assert.equal(success?.ip, '127.0.0.2');
  });

  it('sign-in audit rows carry the request facts and no secret', async () => {
    const browser = () => new TestBrowser(fixture.idp.dispatcher);
    await fixture.idp.accounts.create({ username: 'Audited', password: TEST_PASSWORD });
    const failed = await tryPassword(browser(), 'audited', 'not the password');
    const ok = await tryPassword(browser(), 'AUDITED', TEST_PASSWORD);
    assert.ok(signedIn(ok));
    await tryPassword(browser(), 'nobody-by-this-name', 'some guess');

    const account = await fixture.idp.accounts.findByUsername('audited');
    const rows = await eventsOf('audited');
    assert.deepEqual(
      rows.map((row) => [row.event, row.outcome, row.detail['reason'] ?? null]),
      [
        ['signin.failed', 'failure', 'wrong_password'],
        ['signin.succeeded', 'success', null],
      ],
    );
    for (const row of rows) {
      assert.equal(row.accountId, account?.id);
      assert.equal(row.username, 'Audited');
      assert.equal(row.clientId, fixture.app.clientId);
      assert.equal(row.ip, '127.0.0.1');
      assert.equal(row.userAgent, 'idp-test-browser');
      assert.match(row.requestId ?? '', /^[0-9a-f-]{36}$/);
    }
    assert.equal(rows[0]?.requestId, failed.headers.get('x-request-id'));
    const unknown = (await fixture.audit.list({ event: 'signin.failed' })).filter(
      (row) => row.detail['reason'] === 'unknown_user',
    );
    assert.ok(unknown.length >= 1);
    for (const row of unknown) {
      assert.equal(row.accountId, null);
      assert.equal(row.username, null);
    }

    const everything = JSON.stringify(await fixture.audit.list());
    for (const secret of [
      TEST_PASSWORD,
      'not the password',
      'some guess',
      'nobody-by-this-name',
      fixture.app.clientSecret,
    ]) {
      assert.ok(!everything.includes(secret), 'a secret reached the audit log');
    }
    assert.equal((await fixture.audit.verify()).ok, true);
  });
});

describe('sign-in lockout with a short lock', () => {
  const policy = { ...POLICY, lockMs: 3000 };
  const fixture = lockoutFixture(policy, ['expiry']);
  const { tryPassword, signedIn, eventsOf, lockAccount } = fixture;

  it('the lock expires on time; then the right password signs in', async () => {
    const browser = new TestBrowser(fixture.idp.dispatcher);
    await lockAccount(browser, 'expiry');
    const { lockRemainingMs } = await fixture.limiter.status('expiry');
    assert.ok(lockRemainingMs > 0, `lock remaining ${lockRemainingMs} ms`);
    assert.ok(lockRemainingMs <= policy.lockMs, `lock remaining ${lockRemainingMs} ms`);
    assertRejected(await tryPassword(browser, 'expiry', TEST_PASSWORD), 'while locked');
    const [lastFailure] = (await eventsOf('expiry')).slice(-1);
    assert.equal(lastFailure?.detail['reason'], 'locked');

    await sleep(lockRemainingMs + 100);
    assert.equal((await fixture.limiter.status('expiry')).locked, false);
    assert.ok(signedIn(await tryPassword(browser, 'expiry', TEST_PASSWORD)), 'after the lock');
  });
});

describe('second-factor codes and the lock', () => {
  const fixture = lockoutFixture(POLICY, ['coder']);

  it('wrong and replayed codes count toward the same lock', async () => {
    const { idp, app, config, limiter } = fixture;
    const account = (await idp.accounts.findByUsername('coder'))!;
    const { key, authenticator } = await enrolInDatabase(idp.mfa, account.id);
    const wrongCode = referenceTotp(key, Date.now() / 1000 - 3600);

    /** Signs in with the password and returns the browser on the code page. */
    const atCodePage = async () => {
      const browser = new TestBrowser(idp.dispatcher);
      const { page } = await passwordStep(config, browser, app.redirectUri, 'coder', TEST_PASSWORD);
      assert.equal(pageKind(page, app.redirectUri), 'code');

      return { browser, page };
    };
    const rejectCode = async (code: string, at: { browser: TestBrowser; page: PageResponse }) => {
      const response = await submitCode(at.browser, at.page, code, app.redirectUri);
      assert.equal(response.status, 400);
      assert.equal(alertText(response.body), INVALID_CODE);
    };

    // A full sign-in with a valid code; that code is then replayed in a new sign-in.
    const first = await atCodePage();
    const used = await authenticator.nextCode();
    const done = await submitCode(first.browser, first.page, used, app.redirectUri);
    assert.equal(pageKind(done, app.redirectUri), 'app');
    const second = await atCodePage();
    await rejectCode(used, second);
    for (let i = 0; i < 3; i++) await rejectCode(wrongCode, second);
    // Each sign-in allows a few codes; the lock counts across sign-ins.
    const third = await atCodePage();
    for (let i = 0; i < 4; i++) await rejectCode(wrongCode, third);
    const fourth = await atCodePage();
    await rejectCode(wrongCode, fourth);
    assert.equal((await limiter.status('coder')).locked, false);
    await rejectCode(wrongCode, fourth);
    assert.equal((await limiter.status('coder')).locked, true, 'ten wrong codes lock');

    // Now even the right password is rejected, and a right code on an open code page too.
    assertRejected(
      await fixture.tryPassword(new TestBrowser(idp.dispatcher), 'coder', TEST_PASSWORD),
      'password',
    );
    await rejectCode(await authenticator.nextCode(), fourth);

    const rows = await fixture.eventsOf('coder');
    const reasons = rows
      .filter((row) => row.event === 'signin.failed')
      .map((row) => `${String(row.detail['step'])}:${String(row.detail['reason'])}`);
    assert.deepEqual(reasons, [
      'code:replayed_code',
      ...Array<string>(9).fill('code:wrong_code'),
      'password:locked',
      'code:locked',
    ]);
    const locked = rows.find((row) => row.event === 'account.locked');
    assert.equal(locked?.detail['step'], 'code');
    assert.equal(locked?.clientId, app.clientId);
    const success = rows.find((row) => row.event === 'signin.succeeded');
    assert.deepEqual([success?.detail['method'], success?.detail['amr']], ['totp', 'pwd otp mfa']);
  });
});
