import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import { WRONG_PASSWORD_OR_CODE } from '../src/accounts/page.ts';
import { INVALID_CODE } from '../src/interactions/second-factor.ts';
import { alertText, type PageResponse, parseForms, TestBrowser } from './support/browser.ts';
import { createTestClient, startTestIdp, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import {
  enrolInDatabase,
  exchange,
  pageKind,
  passwordStep,
  readEnrolmentPage,
  readRecoveryCodes,
  submitCode,
} from './support/mfa-flow.ts';
import { discoverRp, startAuthorization } from './support/rp.ts';
import { Authenticator, referenceTotp } from './support/totp.ts';

const NEW_PASSWORD = 'a brand new passphrase';

describe('account page', () => {
  let idp: TestIdp;
  let app: Awaited<ReturnType<typeof createTestClient>>;
  let config: client.Configuration;
  let userCount = 0;

  before(async () => {
    idp = await startTestIdp();
    app = await createTestClient(idp);
    config = await discoverRp(idp, app.clientId, app.clientSecret);
  });

  after(async () => {
    await idp?.close();
  });

  async function newUser() {
    const username = `person${++userCount}`;
    const account = await idp.accounts.create({ username, password: TEST_PASSWORD });

    return { username, id: account.id };
  }

  async function enrolledUser() {
    const user = await newUser();
    const { authenticator, codes } = await enrolInDatabase(idp.mfa, user.id);

    return { ...user, authenticator, codes };
  }

  const accountUrl = () => `${idp.issuer}/account`;

  /** Opens /account in a new browser and signs in through idp; returns the account page. */
  async function openAccount(username: string, authenticator?: Authenticator) {
    const browser = new TestBrowser(idp.dispatcher);
    const loginPage = await browser.follow(accountUrl());
    assert.equal(pageKind(loginPage, app.redirectUri), 'login', loginPage.body.slice(0, 300));
    assert.match(loginPage.body, /your account settings/);
    let page = await browser.submit(loginPage, { username, password: TEST_PASSWORD });
    if (authenticator) {
      assert.equal(pageKind(page, app.redirectUri), 'code');
      page = await browser.submit(page, { code: await authenticator.nextCode() });
    }
    assert.equal(page.status, 200, page.body.slice(0, 300));
    assert.equal(new URL(page.url).pathname, '/account');

    return { browser, page };
  }

  /** Signs in to the app in a new browser; returns the browser and the tokens. */
  async function appSession(username: string, authenticator?: Authenticator) {
    const browser = new TestBrowser(idp.dispatcher);
    const { start, page } = await passwordStep(
      config,
      browser,
      app.redirectUri,
      username,
      TEST_PASSWORD,
    );
    const done = authenticator
      ? await submitCode(browser, page, await authenticator.nextCode(), app.redirectUri)
      : page;
    const { tokens } = await exchange(config, start, done);

    return { browser, tokens };
  }

  async function silentError(browser: TestBrowser): Promise<string | null> {
    const start = await startAuthorization(config, app.redirectUri, { prompt: 'none' });
    const answer = await browser.follow(start.url.href, {}, app.redirectUri);

    return new URL(answer.location!).searchParams.get('error');
  }

  const post = (
    browser: TestBrowser,
    page: PageResponse,
    action: string,
    values: Record<string, string>,
  ) => browser.submit(page, values, undefined, action);

  it('signs in through idp, shows status', async () => {
    const user = await newUser();
    const { browser, page } = await openAccount(user.username);
    assert.equal(page.headers.get('cache-control'), 'no-store');
    assert.match(page.body, new RegExp(`Signed in as <strong>${user.username}</strong>`));
    assert.match(page.body, /Two-step sign-in is <strong>off<\/strong>/);
    const forms = parseForms(page.body);
    assert.ok(forms.length >= 2);
    for (const form of forms) assert.match(form.fields['csrf'] ?? '', /^[\w-]{43}$/);
    // No inline script or style: the idle warning's script is a file of idp's own.
    assert.ok(!/<script(?![^>]* src="\/static\/idle\.js")|style=/.test(page.body));
    // Signed in once, the page opens directly.
    const again = await browser.request(accountUrl());
    assert.equal(again.status, 200);
  });

  it('without a session redirects to sign-in', async () => {
    const browser = new TestBrowser(idp.dispatcher);
    const first = await browser.request(accountUrl());
    assert.equal(first.status, 303);
    assert.equal(first.location, `${idp.issuer}/account/login`);
    const callback = await browser.request(`${idp.issuer}/account/callback?code=x&state=forged`);
    assert.equal(callback.status, 400);
  });

  it('sets up 2FA, ends other sessions', async () => {
    const user = await newUser();
    const other = await appSession(user.username);
    const { browser, page } = await openAccount(user.username);

    const refused = await post(browser, page, '/account/authenticator', { password: 'wrong one' });
    assert.equal(refused.status, 400);
    assert.equal(alertText(refused.body), WRONG_PASSWORD_OR_CODE);

    const enrolPage = await post(browser, page, '/account/authenticator', {
      password: TEST_PASSWORD,
    });
    assert.equal(pageKind(enrolPage, app.redirectUri), 'enrol');
    const { key, uri } = readEnrolmentPage(enrolPage);
    assert.equal(decodeURIComponent(uri.pathname), `/localhost:${idp.port}:${user.username}`);
    const wrong = await browser.submit(enrolPage, { code: 'abcdef' });
    assert.equal(wrong.status, 400);
    assert.equal(alertText(wrong.body), INVALID_CODE);
    assert.equal((await idp.mfa.status(user.id)).enrolled, false);

    const authenticator = new Authenticator(key);
    const done = await browser.submit(enrolPage, { code: await authenticator.nextCode() });
    assert.equal(done.status, 200);
    assert.equal(readRecoveryCodes(done).length, 10);
    assert.deepEqual(await idp.mfa.status(user.id), { enrolled: true, recoveryCodesLeft: 10 });

    assert.equal(await silentError(other.browser), 'login_required', 'other session survived');
    await assert.rejects(client.refreshTokenGrant(config, other.tokens.refresh_token!));
    const stillHere = await browser.request(accountUrl());
    assert.equal(stillHere.status, 200, 'this session ended');
    assert.match(stillHere.body, /Two-step sign-in is <strong>on<\/strong>/);
  });

  it('regenerates recovery codes with password and code', async () => {
    const user = await enrolledUser();
    const { browser, page } = await openAccount(user.username, user.authenticator);
    assert.match(page.body.replace(/\s+/g, ' '), /<strong>10<\/strong> unused recovery codes/);
    const code = await user.authenticator.nextCode();
    const wrongCode = await post(browser, page, '/account/recovery-codes', {
      password: TEST_PASSWORD,
      code: referenceTotp(user.authenticator.key, Date.now() / 1000 - 120),
    });
    assert.equal(wrongCode.status, 400);
    assert.equal(alertText(wrongCode.body), WRONG_PASSWORD_OR_CODE);
    const wrongPassword = await post(browser, page, '/account/recovery-codes', {
      password: 'not the password',
      code,
    });
    assert.equal(wrongPassword.status, 400);
    const done = await post(browser, page, '/account/recovery-codes', {
      password: TEST_PASSWORD,
      code,
    });
    assert.equal(done.status, 200, done.body.slice(0, 300));
    const fresh = readRecoveryCodes(done);
    assert.equal(fresh.length, 10);
    for (const old of user.codes) {
      assert.equal(await idp.mfa.useRecoveryCode(user.id, old), undefined, 'old code works');
    }
    assert.equal(await idp.mfa.useRecoveryCode(user.id, fresh[0]!), 9);
  });

  it('replaces the authenticator', async () => {
    const user = await enrolledUser();
    const other = await appSession(user.username, user.authenticator);
    const { browser, page } = await openAccount(user.username, user.authenticator);
    // Both codes of this minute are used: the current code is a recovery code, as after a lost phone.
    const enrolPage = await post(browser, page, '/account/authenticator', {
      password: TEST_PASSWORD,
      code: user.codes[0]!,
    });
    assert.equal(pageKind(enrolPage, app.redirectUri), 'enrol');
    const { key } = readEnrolmentPage(enrolPage);
    assert.notDeepEqual(key, user.authenticator.key);
    const replacement = new Authenticator(key);
    const done = await browser.submit(enrolPage, { code: await replacement.nextCode() });
    assert.equal(done.status, 200);
    assert.equal(readRecoveryCodes(done).length, 0, 'recovery codes stay');
    assert.equal((await idp.mfa.status(user.id)).recoveryCodesLeft, 9);
    assert.equal(await silentError(other.browser), 'login_required');

    // The old authenticator no longer signs in; the new one does.
    const signIn = new TestBrowser(idp.dispatcher);
    const { page: codePage } = await passwordStep(
      config,
      signIn,
      app.redirectUri,
      user.username,
      TEST_PASSWORD,
    );
    const old = await submitCode(
      signIn,
      codePage,
      referenceTotp(user.authenticator.key, Date.now() / 1000),
      app.redirectUri,
    );
    assert.equal(old.status, 400);
    const fresh = await submitCode(signIn, codePage, await replacement.nextCode(), app.redirectUri);
    assert.equal(pageKind(fresh, app.redirectUri), 'app');
  });

  it('changes the password, ends other sessions', async () => {
    const user = await newUser();
    const other = await appSession(user.username);
    const { browser, page } = await openAccount(user.username);
    const change = (values: Record<string, string>) =>
      post(browser, page, '/account/password', values);

    const mismatch = await change({
      password: TEST_PASSWORD,
      new_password: NEW_PASSWORD,
      confirm_password: `${NEW_PASSWORD}!`,
    });
    assert.equal(mismatch.status, 400);
    assert.match(alertText(mismatch.body) ?? '', /do not match/);
    const short = await change({
      password: TEST_PASSWORD,
      new_password: 'short',
      confirm_password: 'short',
    });
    assert.match(alertText(short.body) ?? '', /at least 8 characters/);
    const wrong = await change({
      password: 'not my password',
      new_password: NEW_PASSWORD,
      confirm_password: NEW_PASSWORD,
    });
    assert.equal(alertText(wrong.body), WRONG_PASSWORD_OR_CODE);

    const done = await change({
      password: TEST_PASSWORD,
      new_password: NEW_PASSWORD,
      confirm_password: NEW_PASSWORD,
    });
    assert.equal(done.status, 200);
    assert.match(done.body, /password was changed/);
    assert.equal(await silentError(other.browser), 'login_required');
    await assert.rejects(
      client.refreshTokenGrant(config, other.tokens.refresh_token!),
      (error: Error & { error?: string }) => error.error === 'invalid_grant',
    );
    assert.equal(
      (await client.tokenIntrospection(config, other.tokens.access_token)).active,
      false,
    );
    assert.equal((await browser.request(accountUrl())).status, 200, 'this session ended');

    const fresh = new TestBrowser(idp.dispatcher);
    const { page: next } = await passwordStep(
      config,
      fresh,
      app.redirectUri,
      user.username,
      NEW_PASSWORD,
    );
    assert.equal(pageKind(next, app.redirectUri), 'app');
  });

  it('forms need the session CSRF token', async () => {
    const user = await newUser();
    const { browser, page } = await openAccount(user.username);
    const missing = await browser.request(accountUrl() + '/authenticator', {
      form: { password: TEST_PASSWORD },
    });
    assert.equal(missing.status, 403);
    const intruder = await newUser();
    const theirs = await openAccount(intruder.username);
    const token = parseForms(theirs.page.body)[0]!.fields['csrf']!;
    const foreign = await browser.request(accountUrl() + '/authenticator', {
      form: { password: TEST_PASSWORD, csrf: token },
    });
    assert.equal(foreign.status, 403);
    const anonymous = await new TestBrowser(idp.dispatcher).request(accountUrl() + '/password', {
      form: { csrf: parseForms(page.body)[0]!.fields['csrf']! },
    });
    assert.equal(anonymous.status, 403);
    assert.equal((await idp.mfa.status(user.id)).enrolled, false);
  });

  it('five wrong passwords sign out', async () => {
    const user = await newUser();
    const { browser, page } = await openAccount(user.username);
    for (let i = 1; i <= 4; i++) {
      const wrong = await post(browser, page, '/account/authenticator', { password: `nope ${i}` });
      assert.equal(alertText(wrong.body), WRONG_PASSWORD_OR_CODE);
    }
    const last = await post(browser, page, '/account/authenticator', { password: 'nope 5' });
    assert.match(alertText(last.body) ?? '', /signed out/);
    const after = await browser.request(accountUrl());
    assert.equal(after.status, 303, 'still signed in');
  });

  it('password-only session must add the code', async () => {
    const user = await newUser();
    const { browser } = await appSession(user.username);
    const { authenticator } = await enrolInDatabase(idp.mfa, user.id);

    const codePage = await browser.follow(accountUrl());
    assert.equal(pageKind(codePage, app.redirectUri), 'code', 'asked for the code only');
    const page = await browser.submit(codePage, { code: await authenticator.nextCode() });
    assert.equal(new URL(page.url).pathname, '/account');
    assert.match(page.body, /Two-step sign-in is <strong>on<\/strong>/);
  });
});
