import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import { fetch } from 'undici';
import { resetTwoFactor } from '../src/cli/users.ts';
import { INVALID_CODE, TOO_MANY_CODES } from '../src/interactions/second-factor.ts';
import { createLogger } from '../src/logger.ts';
import { ACR_MFA, ACR_PASSWORD, PAPE_MULTI_FACTOR } from '../src/mfa/policy.ts';
import { openServices } from '../src/services.ts';
import { alertText, TestBrowser, type PageResponse } from './support/browser.ts';
import { createTestClient, startTestIdp, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import {
  enrol,
  enrolInDatabase,
  exchange,
  pageKind,
  passwordStep,
  readEnrolmentPage,
  readRecoveryCodes,
  submitCode,
} from './support/mfa-flow.ts';
import { discoverRp, startAuthorization } from './support/rp.ts';
import { Authenticator, referenceHotp, referenceTotp } from './support/totp.ts';

const MFA_AMR = ['pwd', 'otp', 'mfa'];

describe('second factor', () => {
  let idp: TestIdp;
  let app: Awaited<ReturnType<typeof createTestClient>>;
  let strictApp: Awaited<ReturnType<typeof createTestClient>>;
  let config: client.Configuration;
  let strictConfig: client.Configuration;
  let userCount = 0;

  before(async () => {
    idp = await startTestIdp({ env: { IDP_TOTP_ISSUER: 'Case Co' } });
    app = await createTestClient(idp);
    strictApp = await createTestClient(idp, { require2fa: true });
    config = await discoverRp(idp, app.clientId, app.clientSecret);
    strictConfig = await discoverRp(idp, strictApp.clientId, strictApp.clientSecret);
  });

  after(async () => {
    await idp?.close();
  });

  async function newUser() {
    const username = `user${++userCount}`;
    const account = await idp.accounts.create({ username, password: TEST_PASSWORD });

    return { username, id: account.id };
  }

  /** A user with an authenticator, enrolled directly in the database. */
  async function enrolledUser() {
    const user = await newUser();
    const { authenticator, codes } = await enrolInDatabase(idp.mfa, user.id);

    return { ...user, authenticator, codes };
  }

  const signIn = (
    username: string,
    extra: Record<string, string> = {},
    rp = config,
    redirectUri = app.redirectUri,
    browser = new TestBrowser(idp.dispatcher),
  ) =>
    passwordStep(rp, browser, redirectUri, username, TEST_PASSWORD, extra).then((result) => ({
      ...result,
      browser,
    }));

  it('discovery lists the acr values', async () => {
    const response = await fetch(`${idp.issuer}/.well-known/openid-configuration`, {
      dispatcher: idp.dispatcher,
    });
    const discovery = (await response.json()) as Record<string, unknown>;
    assert.deepEqual(discovery['acr_values_supported'], [ACR_PASSWORD, ACR_MFA]);
    assert.ok((discovery['claims_supported'] as string[]).includes('amr'));
    assert.ok((discovery['claims_supported'] as string[]).includes('acr'));
  });

  it('password only: amr pwd and acr pwd', async () => {
    const user = await newUser();
    const { start, page } = await signIn(user.username);
    assert.equal(pageKind(page, app.redirectUri), 'app');
    const { claims } = await exchange(config, start, page);
    assert.deepEqual(claims['amr'], ['pwd']);
    assert.equal(claims['acr'], ACR_PASSWORD);
  });

  it('enrolled user is asked for a code', async () => {
    const user = await enrolledUser();
    const { start, page, browser } = await signIn(user.username);
    assert.equal(pageKind(page, app.redirectUri), 'code');
    assert.equal(page.headers.get('cache-control'), 'no-store');
    assert.match(page.body, /autocomplete="one-time-code"/);
    assert.match(page.body, /inputmode="numeric"/);
    assert.match(page.body, /<label for="code">/);
    const done = await submitCode(
      browser,
      page,
      await user.authenticator.nextCode(),
      app.redirectUri,
    );
    const { claims } = await exchange(config, start, done);
    assert.deepEqual(claims['amr'], MFA_AMR);
    assert.equal(claims['acr'], ACR_MFA);
  });

  /** Runs `work` with the server-wide require-2fa setting on, then turns it off again. */
  async function withServerSetting(work: () => Promise<void>) {
    await idp.settings.set('require-2fa', true, 'test');
    try {
      await work();
    } finally {
      await idp.settings.set('require-2fa', false, 'test');
    }
  }

  it('enrolment: QR code, key, recovery codes', async () => {
    await withServerSetting(async () => {
      const user = await newUser();
      const { start, page, browser } = await signIn(user.username);
      assert.equal(pageKind(page, app.redirectUri), 'enrol');
      assert.equal(page.headers.get('cache-control'), 'no-store');
      const { uri, key } = readEnrolmentPage(page);
      assert.equal(uri.protocol, 'otpauth:');
      assert.equal(uri.host, 'totp');
      assert.equal(decodeURIComponent(uri.pathname), `/Case Co:${user.username}`);
      assert.equal(uri.searchParams.get('issuer'), 'Case Co');
      assert.equal(key.length, 20, '160-bit secret');

      const authenticator = new Authenticator(key);
      const codesPage = await submitCode(
        browser,
        page,
        await authenticator.nextCode(),
        app.redirectUri,
      );
      assert.equal(pageKind(codesPage, app.redirectUri), 'codes');
      assert.equal(codesPage.headers.get('cache-control'), 'no-store');
      const codes = readRecoveryCodes(codesPage);
      assert.equal(codes.length, 10);
      assert.deepEqual(await idp.mfa.status(user.id), { enrolled: true, recoveryCodesLeft: 10 });

      const done = await browser.submit(codesPage, {}, app.redirectUri);
      const { claims } = await exchange(config, start, done);
      assert.deepEqual(claims['amr'], MFA_AMR);
      assert.equal(claims['acr'], ACR_MFA);

      // The secret is never shown again: the next sign-in asks for a code only.
      const again = await signIn(user.username);
      assert.equal(pageKind(again.page, app.redirectUri), 'code');
      assert.ok(!again.page.body.includes('<img'), 'QR code shown again');
      const base32 = uri.searchParams.get('secret')!;
      assert.ok(!again.page.body.replaceAll(' ', '').includes(base32), 'key shown again');
      const finished = await submitCode(
        again.browser,
        again.page,
        await authenticator.nextCode(),
        app.redirectUri,
      );
      assert.deepEqual((await exchange(config, again.start, finished)).claims['amr'], MFA_AMR);
    });
  });

  it('enrolment: wrong code leaves no credential', async () => {
    await withServerSetting(async () => {
      const user = await newUser();
      const { page, browser } = await signIn(user.username);
      const { key } = readEnrolmentPage(page);
      const right = referenceTotp(key, Date.now() / 1000);
      const wrong = String((Number(right) + 500_000) % 1_000_000).padStart(6, '0');
      const retry = await submitCode(browser, page, wrong, app.redirectUri);
      assert.equal(retry.status, 400);
      assert.equal(alertText(retry.body), INVALID_CODE);
      assert.equal(pageKind(retry, app.redirectUri), 'enrol');
      assert.deepEqual(readEnrolmentPage(retry).key, key, 'same secret offered again');
      assert.deepEqual(await idp.mfa.status(user.id), { enrolled: false, recoveryCodesLeft: 0 });
    });
  });

  it('enrolment: abandoned changes nothing', async () => {
    await withServerSetting(async () => {
      const user = await newUser();
      const before = await idp.database.query('SELECT * FROM accounts WHERE id = $1', [user.id]);
      const first = await signIn(user.username);
      const firstKey = readEnrolmentPage(first.page).key;
      // Cancelled from the page, and simply left in another browser.
      const cancelled = await first.browser.follow(
        first.page.url.replace(/\/interaction\/([^/]+).*$/, '/interaction/$1/abort'),
        {},
        app.redirectUri,
      );
      assert.equal(new URL(cancelled.location!).searchParams.get('error'), 'access_denied');
      const second = await signIn(user.username);
      assert.equal(pageKind(second.page, app.redirectUri), 'enrol');

      assert.deepEqual(await idp.mfa.status(user.id), { enrolled: false, recoveryCodesLeft: 0 });
      const credentials = await idp.database.query(
        'SELECT 1 FROM totp_credentials WHERE account_id = $1 UNION ALL SELECT 1 FROM recovery_codes WHERE account_id = $1',
        [user.id],
      );
      assert.equal(credentials.length, 0);
      const after = await idp.database.query('SELECT * FROM accounts WHERE id = $1', [user.id]);
      assert.deepEqual(after, before);
      // A new attempt gets a new secret.
      assert.notDeepEqual(readEnrolmentPage(second.page).key, firstKey);
    });
  });

  it('policy matrix gives the right steps', async () => {
    for (const server of [false, true]) {
      await idp.settings.set('require-2fa', server, 'test');
      for (const clientFlag of [false, true]) {
        for (const enrolled of [false, true]) {
          for (const acr of ['', ACR_MFA, PAPE_MULTI_FACTOR]) {
            const label = `server=${server} client=${clientFlag} enrolled=${enrolled} acr=${acr}`;
            const withTotp = enrolled ? await enrolledUser() : undefined;
            const user = withTotp ?? (await newUser());
            const rp = clientFlag ? strictConfig : config;
            const extra: Record<string, string> = acr ? { acr_values: acr } : {};
            const { start, page, browser } = await signIn(user.username, extra, rp);
            const required = enrolled || server || clientFlag || acr !== '';
            const expected = enrolled ? 'code' : required ? 'enrol' : 'app';
            assert.equal(pageKind(page, app.redirectUri), expected, label);

            let done: PageResponse = page;
            if (withTotp) {
              done = await submitCode(
                browser,
                page,
                await withTotp.authenticator.nextCode(),
                app.redirectUri,
              );
            } else if (expected === 'enrol') {
              done = (await enrol(browser, page, app.redirectUri)).page;
            }
            const { claims } = await exchange(rp, start, done);
            assert.deepEqual(claims['amr'], required ? MFA_AMR : ['pwd'], label);
            assert.equal(claims['acr'], required ? ACR_MFA : ACR_PASSWORD, label);
          }
        }
      }
    }
    await idp.settings.set('require-2fa', false, 'test');
  });

  /** A 6-digit code that is none of the codes the authenticator accepts now. */
  function wrongCodeFor(authenticator: Authenticator): string {
    const now = Date.now() / 1000;
    const valid = new Set(
      [-60, -30, 0, 30, 60].map((o) => referenceTotp(authenticator.key, now + o)),
    );
    for (const candidate of ['000000', '111111', '222222', '333333', '444444', '555555']) {
      if (!valid.has(candidate)) return candidate;
    }
    throw new Error('no wrong code found');
  }

  const interactionPath = (page: PageResponse) => new URL(page.url).pathname.replace(/\/$/, '');

  it('skipping the code step fails', async () => {
    const user = await enrolledUser();
    const { page, browser } = await signIn(user.username);
    assert.equal(pageKind(page, app.redirectUri), 'code');
    const base = `${idp.issuer}${interactionPath(page)}`;
    const seen: PageResponse[] = [];
    const expectRejected = async (response: PageResponse, what: string) => {
      seen.push(response);
      assert.equal(response.status, 400, what);
      assert.equal(response.location, undefined, what);
    };

    await expectRejected(await browser.request(`${base}/continue`, { form: {} }), 'continue');
    await expectRejected(
      await browser.request(`${base}/enrol`, { form: { code: '123456' } }),
      'enrol',
    );
    await expectRejected(
      await browser.request(`${base}/consent`, { form: { decision: 'allow' } }),
      'consent',
    );
    // A correct code posted from another browser, without this browser's interaction cookie.
    const attacker = new TestBrowser(idp.dispatcher);
    await expectRejected(
      await attacker.request(`${base}/totp`, {
        form: { code: await user.authenticator.nextCode() },
      }),
      'another browser',
    );
    // A silent request in the same browser: no session yet.
    const silent = await startAuthorization(config, app.redirectUri, { prompt: 'none' });
    const silentAnswer = await browser.follow(silent.url.href, {}, app.redirectUri);
    const back = new URL(silentAnswer.location!);
    assert.equal(back.searchParams.get('error'), 'login_required');
    assert.equal(back.searchParams.get('code'), null);
    for (const response of seen) assert.ok(!response.location?.includes('code='));

    // The real code still works afterwards in this browser.
    const done = await submitCode(
      browser,
      page,
      await user.authenticator.nextCode(),
      app.redirectUri,
    );
    assert.equal(pageKind(done, app.redirectUri), 'app');
  });

  it('resuming the authorization skips nothing', async () => {
    const user = await enrolledUser();
    const { page, browser } = await signIn(user.username);
    const uid = interactionPath(page).split('/').pop()!;
    const resumed = await browser.follow(`${idp.issuer}/auth/${uid}`, {}, app.redirectUri);
    assert.notEqual(pageKind(resumed, app.redirectUri), 'app');
    assert.ok(!resumed.location?.includes('code='));
    assert.equal(pageKind(resumed, app.redirectUri), 'login', 'starts over at the password');
  });

  it('five wrong codes end the interaction', async () => {
    const user = await enrolledUser();
    const { page, browser } = await signIn(user.username);
    const wrong = wrongCodeFor(user.authenticator);
    const recoveryPage = await browser.follow(`${page.url.replace(/\/$/, '')}/recovery`);
    assert.equal(pageKind(recoveryPage, app.redirectUri), 'recovery');
    for (let i = 1; i <= 4; i++) {
      // Wrong TOTP codes and wrong recovery codes count together.
      const from = i % 2 ? page : recoveryPage;
      const retry = await submitCode(
        browser,
        from,
        i % 2 ? wrong : 'aaaa-bbbb-cccc-dddd',
        app.redirectUri,
      );
      assert.equal(retry.status, 400, `attempt ${i}`);
      assert.equal(alertText(retry.body), INVALID_CODE, `attempt ${i}`);
    }
    const stopped = await submitCode(browser, page, wrong, app.redirectUri);
    assert.equal(stopped.status, 400);
    assert.equal(alertText(stopped.body), TOO_MANY_CODES);
    const right = await submitCode(
      browser,
      page,
      await user.authenticator.nextCode(),
      app.redirectUri,
    );
    assert.equal(right.status, 400, 'a right code after the stop');
    assert.equal(right.location, undefined);

    const link = /<a href="([^"]+)">Return to the app<\/a>/.exec(stopped.body)?.[1];
    assert.ok(link);
    const back = await browser.follow(link, {}, app.redirectUri);
    assert.equal(new URL(back.location!).searchParams.get('error'), 'access_denied');
    const failures = idp.logs.filter(
      (line) => line['msg'] === 'second factor failed' && line['accountId'] === user.id,
    );
    assert.equal(failures.length, 5);
  });

  it('parallel wrong codes get five checks', async () => {
    const user = await enrolledUser();
    const { page, browser } = await signIn(user.username);
    const wrong = wrongCodeFor(user.authenticator);
    const answers = await Promise.all(
      Array.from({ length: 12 }, () => submitCode(browser, page, wrong, app.redirectUri)),
    );
    for (const answer of answers) assert.equal(answer.status, 400);
    const right = await submitCode(
      browser,
      page,
      await user.authenticator.nextCode(),
      app.redirectUri,
    );
    assert.equal(right.status, 400);
    assert.equal(right.location, undefined);
    const failures = idp.logs.filter(
      (line) => line['msg'] === 'second factor failed' && line['accountId'] === user.id,
    );
    assert.equal(failures.length, 5, 'codes checked');
  });

  it('recovery code: single use, count shown', async () => {
    const user = await enrolledUser();
    const { page, browser, start } = await signIn(user.username);
    const recoveryPage = await browser.follow(`${page.url.replace(/\/$/, '')}/recovery`);
    assert.match(recoveryPage.body, /autocomplete="one-time-code"/);
    const passed = await submitCode(browser, recoveryPage, user.codes[0]!, app.redirectUri);
    assert.equal(pageKind(passed, app.redirectUri), 'codes');
    assert.match(
      passed.body.replace(/\s+/g, ' '),
      /You have <strong>9<\/strong> recovery codes left/,
    );
    const done = await browser.submit(passed, {}, app.redirectUri);
    const { claims } = await exchange(config, start, done);
    assert.deepEqual(claims['amr'], ['pwd', 'mfa']);
    assert.equal(claims['acr'], ACR_MFA);

    const again = await signIn(user.username);
    const againRecovery = await again.browser.follow(
      `${again.page.url.replace(/\/$/, '')}/recovery`,
    );
    const reused = await submitCode(again.browser, againRecovery, user.codes[0]!, app.redirectUri);
    assert.equal(reused.status, 400);
    assert.equal(alertText(reused.body), INVALID_CODE);
    assert.equal((await idp.mfa.status(user.id)).recoveryCodesLeft, 9);
  });

  /** Runs a silent (prompt=none) authorization in a browser and returns the app's callback. */
  async function silentAuthorization(
    browser: TestBrowser,
    extra: Record<string, string> = {},
  ): Promise<URL> {
    const start = await startAuthorization(config, app.redirectUri, { prompt: 'none', ...extra });
    const answer = await browser.follow(start.url.href, {}, app.redirectUri);
    assert.ok(answer.location, `no redirect: ${answer.status} ${answer.body.slice(0, 200)}`);

    return new URL(answer.location);
  }

  it('step-up: password session, then TOTP only', async () => {
    const user = await newUser();
    const first = await signIn(user.username);
    assert.equal(pageKind(first.page, app.redirectUri), 'app', 'password is enough at first');
    const browser = first.browser;
    assert.ok((await silentAuthorization(browser)).searchParams.get('code'));
    // The session has the password only, so a request for multi-factor cannot be silent.
    const refused = await silentAuthorization(browser, { acr_values: ACR_MFA });
    assert.equal(refused.searchParams.get('error'), 'login_required');
    assert.equal(refused.searchParams.get('code'), null);

    // The user enrols elsewhere; from now on every sign-in needs the code.
    const { authenticator } = await enrolInDatabase(idp.mfa, user.id);
    assert.equal((await silentAuthorization(browser)).searchParams.get('error'), 'login_required');

    const start = await startAuthorization(config, app.redirectUri, { acr_values: ACR_MFA });
    const codePage = await browser.follow(start.url.href, {}, app.redirectUri);
    assert.equal(pageKind(codePage, app.redirectUri), 'code', 'no password asked again');
    const done = await submitCode(
      browser,
      codePage,
      await authenticator.nextCode(),
      app.redirectUri,
    );
    const { claims } = await exchange(config, start, done);
    assert.deepEqual(claims['amr'], MFA_AMR);
    assert.equal(claims['acr'], ACR_MFA);
    assert.equal(claims.sub, user.id);

    const silent = await silentAuthorization(browser, { acr_values: ACR_MFA });
    assert.ok(silent.searchParams.get('code'), 'the session now has the second factor');
  });

  it('step-up without TOTP asks password, enrols', async () => {
    const user = await newUser();
    const first = await signIn(user.username);
    const browser = first.browser;
    const start = await startAuthorization(config, app.redirectUri, {
      acr_values: PAPE_MULTI_FACTOR,
    });
    const loginPage = await browser.follow(start.url.href, {}, app.redirectUri);
    assert.equal(pageKind(loginPage, app.redirectUri), 'login');
    const enrolPage = await browser.submit(
      loginPage,
      { username: user.username, password: TEST_PASSWORD },
      app.redirectUri,
    );
    assert.equal(pageKind(enrolPage, app.redirectUri), 'enrol');
    const { page } = await enrol(browser, enrolPage, app.redirectUri);
    assert.deepEqual((await exchange(config, start, page)).claims['amr'], MFA_AMR);
  });

  it('server setting turns on for sessions too', async () => {
    const user = await newUser();
    const { browser } = await signIn(user.username);
    assert.ok((await silentAuthorization(browser)).searchParams.get('code'));
    await withServerSetting(async () => {
      const refused = await silentAuthorization(browser);
      assert.equal(refused.searchParams.get('error'), 'login_required');
    });
    assert.ok((await silentAuthorization(browser)).searchParams.get('code'));
  });

  it('prompt=login and max_age ask again', async () => {
    const cases: Record<string, string>[] = [{ prompt: 'login' }, { max_age: '0' }];
    for (const extra of cases) {
      // A user per case: each sign-in needs a fresh time step.
      const user = await enrolledUser();
      const { page, browser } = await signIn(user.username);
      await submitCode(browser, page, await user.authenticator.nextCode(), app.redirectUri);
      assert.ok((await silentAuthorization(browser)).searchParams.get('code'));

      const start = await startAuthorization(config, app.redirectUri, extra);
      const loginPage = await browser.follow(start.url.href, {}, app.redirectUri);
      assert.equal(pageKind(loginPage, app.redirectUri), 'login', JSON.stringify(extra));
      const codePage = await browser.submit(
        loginPage,
        { username: user.username, password: TEST_PASSWORD },
        app.redirectUri,
      );
      assert.equal(pageKind(codePage, app.redirectUri), 'code', JSON.stringify(extra));
      const done = await submitCode(
        browser,
        codePage,
        await user.authenticator.nextCode(),
        app.redirectUri,
      );
      const { claims } = await exchange(config, start, done);
      assert.deepEqual(claims['amr'], MFA_AMR);
      assert.ok(Math.abs(Number(claims.auth_time) - Date.now() / 1000) < 10, 'fresh auth_time');
    }
  });

  it('replayed code fails on a second node', async () => {
    const nodeB = await startTestIdp({ setup: idp.setup });
    try {
      const user = await enrolledUser();
      const first = await signIn(user.username);
      const code = await user.authenticator.nextCode();
      const usedStep = user.authenticator.lastStep;
      const done = await submitCode(first.browser, first.page, code, app.redirectUri);
      assert.equal(pageKind(done, app.redirectUri), 'app');

      // The same code on this node, and through node B in another browser.
      const again = await signIn(user.username);
      const sameNode = await submitCode(again.browser, again.page, code, app.redirectUri);
      assert.equal(sameNode.status, 400);
      assert.equal(alertText(sameNode.body), INVALID_CODE);

      const viaB = new TestBrowser(idp.dispatcher);
      const start = await startAuthorization(config, app.redirectUri);
      start.url.port = String(nodeB.port);
      const loginPage = await viaB.follow(start.url.href, {}, app.redirectUri);
      assert.equal(new URL(loginPage.url).port, String(nodeB.port));
      const codePage = await viaB.submit(
        loginPage,
        { username: user.username, password: TEST_PASSWORD },
        app.redirectUri,
      );
      assert.equal(pageKind(codePage, app.redirectUri), 'code');
      const onB = await submitCode(viaB, codePage, code, app.redirectUri);
      assert.equal(onB.status, 400, 'node B accepted a used code');
      assert.equal(alertText(onB.body), INVALID_CODE);
      assert.ok(
        nodeB.logs.some(
          (line) => line['msg'] === 'second factor failed' && line['reason'] === 'replayed code',
        ),
      );

      // A code of an earlier step than the one accepted.
      const earlier = referenceHotp(user.authenticator.key, BigInt(usedStep - 1));
      const onBEarlier = await submitCode(viaB, codePage, earlier, app.redirectUri);
      assert.equal(onBEarlier.status, 400);
    } finally {
      await nodeB.close();
    }
  });

  it('reset-2fa ends sessions and refresh tokens', async () => {
    const user = await enrolledUser();
    const signedIn = [];
    for (let i = 0; i < 2; i++) {
      const { page, browser, start } = await signIn(user.username);
      const done = await submitCode(
        browser,
        page,
        await user.authenticator.nextCode(),
        app.redirectUri,
      );
      signedIn.push({ browser, ...(await exchange(config, start, done)) });
    }
    for (const { browser, tokens } of signedIn) {
      assert.ok(tokens.refresh_token, 'a refresh token');
      assert.ok((await silentAuthorization(browser)).searchParams.get('code'));
    }

    let output = '';
    const out = new Writable({
      write(chunk: Buffer, _encoding, done) {
        output += chunk.toString();
        done();
      },
    });
    const logger = createLogger('silent');
    const services = await openServices(idp.config, logger, {
      migrateOnOpen: false,
      redis: true,
      role: 'command',
    });
    try {
      await resetTwoFactor(services, user.username.toUpperCase(), {
        out,
        logger,
      });
    } finally {
      await services.close();
    }
    assert.match(output, new RegExp(`two-step sign-in of ${user.username} removed`));
    assert.match(output, /ended [1-9]\d* session\(s\) and grant\(s\)/);
    assert.deepEqual(await idp.mfa.status(user.id), { enrolled: false, recoveryCodesLeft: 0 });

    for (const { browser, tokens } of signedIn) {
      const silent = await silentAuthorization(browser);
      assert.equal(silent.searchParams.get('error'), 'login_required');
      await assert.rejects(
        client.refreshTokenGrant(config, tokens.refresh_token!),
        (error: Error & { error?: string }) => error.error === 'invalid_grant',
      );
      const introspected = await client.tokenIntrospection(config, tokens.access_token);
      assert.equal(introspected.active, false);
    }
    const keys = await idp.testRedis.keys();
    assert.ok(!keys.some((key) => key.includes(`account:${user.id}`)), 'account index left');

    // The next sign-in enrols again when 2FA is required, and needs only the password otherwise.
    const plain = await signIn(user.username);
    assert.equal(pageKind(plain.page, app.redirectUri), 'app');
    await withServerSetting(async () => {
      const next = await signIn(user.username);
      assert.equal(pageKind(next.page, app.redirectUri), 'enrol');
    });
  });

  it('pages and log keep secrets safe', async () => {
    await withServerSetting(async () => {
      const user = await newUser();
      const { page, browser } = await signIn(user.username);
      const { key } = readEnrolmentPage(page);
      for (const response of [page]) {
        const csp = response.headers.get('content-security-policy') ?? '';
        assert.ok(csp.includes("img-src 'self' data:"), csp);
        assert.ok(!csp.includes('unsafe-inline'));
        assert.ok(!/<script|style=/.test(response.body), 'inline script or style');
      }
      const authenticator = new Authenticator(key);
      const code = await authenticator.nextCode();
      const codesPage = await submitCode(browser, page, code, app.redirectUri);
      const codes = readRecoveryCodes(codesPage);
      await browser.submit(codesPage, {}, app.redirectUri);

      const log = idp.rawLog();
      const secrets = [
        key.toString('hex'),
        key.toString('base64'),
        key.toString('base64url'),
        readEnrolmentPage(page).uri.searchParams.get('secret')!,
        code,
        ...codes,
        ...codes.map((recovery) => recovery.replaceAll('-', '')),
      ];
      for (const secret of secrets) assert.ok(!log.includes(secret), `secret in the log`);
      assert.ok(log.includes('TOTP enrolled'));
    });
  });

  it('metrics count second-factor outcomes', async () => {
    const scrape = async () => {
      const response = await fetch(`${idp.url}/metrics`, { dispatcher: idp.dispatcher });
      const text = await response.text();

      return (outcome: string) =>
        Number(
          new RegExp(`^idp_second_factor_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(
            text,
          )?.[1] ?? 0,
        );
    };
    const before = await scrape();
    const user = await enrolledUser();
    const { page, browser } = await signIn(user.username);
    await submitCode(browser, page, wrongCodeFor(user.authenticator), app.redirectUri);
    await submitCode(browser, page, await user.authenticator.nextCode(), app.redirectUri);
    const viaRecovery = await signIn(user.username);
    const recoveryPage = await viaRecovery.browser.follow(
      `${viaRecovery.page.url.replace(/\/$/, '')}/recovery`,
    );
    const passed = await submitCode(
      viaRecovery.browser,
      recoveryPage,
      user.codes[1]!,
      app.redirectUri,
    );
    await viaRecovery.browser.submit(passed, {}, app.redirectUri);

    const after = await scrape();
    for (const outcome of ['success', 'wrong_code', 'recovery_code']) {
      assert.equal(after(outcome) - before(outcome), 1, outcome);
    }
  });
});
