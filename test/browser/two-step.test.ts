import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { CATALOGUES, type Locale } from '../../src/views/i18n.ts';
import type { TestCaseApp } from '../support/case-app.ts';
import {
  assertAccessible,
  assertNoSidewaysScroll,
  type ChromiumFixture,
  openChromiumFixture,
} from '../support/chromium.ts';
import { TEST_PASSWORD, type TestIdp } from '../support/idp.ts';
import { Authenticator, base32Decode, nowSeconds, referenceTotp, stepOf } from '../support/totp.ts';

/** Describes the focused element, so the tab order can be checked step by step. */
function focused(page: Page): Promise<string> {
  return page.evaluate(() => {
    const element = document.activeElement;
    if (!element) return 'nothing';
    const name = element.id || element.textContent?.trim() || '';

    return `${element.tagName.toLowerCase()}:${name}`;
  });
}

/** Returns a code of the key that no server accepts now: one from five minutes ago. */
function staleCode(authenticator: Authenticator): string {
  return referenceTotp(authenticator.key, nowSeconds() - 300);
}

describe('two-step sign-in in Chromium through the example app', () => {
  let fixture: ChromiumFixture;
  let idp: TestIdp;
  let app: TestCaseApp;
  let consentApp: TestCaseApp;

  before(async () => {
    fixture = await openChromiumFixture({
      idp: { env: { IDP_PRODUCT_NAME: 'Riverside Health' } },
      app: { require2fa: true },
      consentApp: true,
    });
    ({ idp, app } = fixture);
    consentApp = fixture.consentApp!;
  });

  after(async () => {
    await fixture?.close();
  });

  async function newUser(): Promise<string> {
    const username = `case-worker-${randomBytes(3).toString('hex')}`;
    await idp.accounts.create({ username, password: TEST_PASSWORD, name: 'Maria Lopez' });

    return username;
  }

  /** Runs axe on the page and, at 320 px, checks that it does not scroll sideways. */
  async function check(page: Page, label: string): Promise<void> {
    await assertAccessible(page, label);
    if (page.viewportSize()?.width === 320) await assertNoSidewaysScroll(page, label);
  }

  /** Fills in the login form and submits it. */
  async function password(page: Page, locale: Locale, username: string, secret = TEST_PASSWORD) {
    const text = CATALOGUES[locale];
    await page.getByRole('heading', { name: text['login.title'] }).waitFor();
    await page.getByLabel(text['login.username']).fill(username);
    await page.getByLabel(text['login.password']).fill(secret);
    await page.getByRole('button', { name: text['login.submit'] }).click();
  }

  async function startAtApp(page: Page, target: TestCaseApp = app): Promise<void> {
    await page.goto(target.url.href);
    await page.getByRole('link', { name: 'Sign in', exact: true }).click();
  }

  async function secondFactorShown(page: Page): Promise<string> {
    await page.locator('#user-name').waitFor();

    return (await page.locator('#second-factor').textContent()) ?? '';
  }

  for (const locale of ['en', 'es'] as const) {
    const text = CATALOGUES[locale];
    // The Spanish run is at 320 CSS pixels wide, which is also 1280 pixels at 400 % zoom.
    const viewport = locale === 'es' ? { width: 320, height: 640 } : undefined;

    it(`enrol, code, recovery code; axe on every page (${locale})`, async () => {
      const username = await newUser();
      const page = await fixture.openPage(locale, viewport);

      // First sign-in: the password, then setting up the authenticator.
      await startAtApp(page);
      await page.getByRole('heading', { name: text['login.title'] }).waitFor();
      assert.equal(await page.getAttribute('html', 'lang'), locale);
      await check(page, `login (${locale})`);
      await password(page, locale, username, 'not the password');
      assert.equal((await page.getByRole('alert').textContent())?.trim(), text['login.invalid']);
      await check(page, `login with an error (${locale})`);
      await password(page, locale, username);

      await page.getByRole('heading', { name: text['enrol.title'] }).waitFor();
      await check(page, `enrolment (${locale})`);
      // The key as a person reads it off the screen, in groups of four.
      const key = ((await page.locator('code.key').textContent()) ?? '').trim();
      assert.match(key, /^[A-Z2-7]{4}( [A-Z2-7]{1,4})+$/);
      const authenticator = new Authenticator(base32Decode(key));
      const codeField = page.getByLabel(text['enrol.codeLabel']);
      assert.equal(await codeField.getAttribute('inputmode'), 'numeric');
      assert.equal(await codeField.getAttribute('autocomplete'), 'one-time-code');
      await codeField.fill(staleCode(authenticator));
      await page.getByRole('button', { name: text['enrol.submit'] }).click();
      assert.equal((await page.getByRole('alert').textContent())?.trim(), text['code.invalid']);
      assert.equal(await codeField.getAttribute('aria-invalid'), 'true');
      await check(page, `enrolment with an error (${locale})`);
      await codeField.fill(await authenticator.nextCode());
      await page.getByRole('button', { name: text['enrol.submit'] }).click();

      await page.getByRole('heading', { name: text['codes.title'] }).waitFor();
      await check(page, `recovery codes (${locale})`);
      const recoveryCodes = await page.locator('ul.codes code').allTextContents();
      assert.equal(recoveryCodes.length, 10);
      await page.getByRole('button', { name: text['codes.continue'] }).click();
      assert.match(await secondFactorShown(page), /yes.*otp/s);

      // Sign out through the app, which sends the browser to idp's logout page.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByRole('heading', { name: text['logout.title'] }).waitFor();
      await check(page, `logout (${locale})`);
      await page.getByRole('button', { name: text['logout.submit'] }).click();
      await page.waitForURL(new URL('/signed-out', app.url).href);

      // Second sign-in: the password, then a code from the authenticator.
      await startAtApp(page);
      await password(page, locale, username);
      await page.getByRole('heading', { name: text['code.title'] }).waitFor();
      await check(page, `code (${locale})`);
      const code = page.getByLabel(text['code.label']);
      assert.equal(await code.getAttribute('inputmode'), 'numeric');
      await code.fill(staleCode(authenticator));
      await page.getByRole('button', { name: text['code.submit'] }).click();
      assert.equal(await code.getAttribute('aria-invalid'), 'true');
      await check(page, `code with an error (${locale})`);
      await code.fill(await authenticator.nextCode());
      await page.getByRole('button', { name: text['code.submit'] }).click();
      assert.match(await secondFactorShown(page), /yes.*otp/s);

      // An app registered with consent asks first; the idp session carries over.
      await startAtApp(page, consentApp);
      await page.getByRole('heading', { name: text['consent.title'] }).waitFor();
      await check(page, `consent (${locale})`);
      await page.getByRole('button', { name: text['consent.allow'] }).click();
      await page.locator('#user-name').waitFor();

      // The account page, with an error tied to the form it belongs to.
      await page.goto(`${idp.issuer}/account`);
      await page.getByRole('heading', { name: text['account.title'], level: 1 }).waitFor();
      await check(page, `account (${locale})`);
      const passwordForm = page.locator('form[action="/account/password"]');
      await passwordForm.getByLabel(text['account.currentPassword']).fill('not the password');
      await passwordForm.getByLabel(text['account.currentCode']).fill('123456');
      await passwordForm
        .getByLabel(text['account.newPassword'].replace('{min}', '8'))
        .fill('a new passphrase');
      await passwordForm.getByLabel(text['account.newPasswordAgain']).fill('a new passphrase');
      await passwordForm.getByRole('button', { name: text['account.changePassword'] }).click();
      assert.equal(
        (await page.getByRole('alert').textContent())?.trim(),
        text['account.wrongPasswordOrCode'],
      );
      const current = page
        .locator('form[action="/account/password"]')
        .getByLabel(text['account.currentPassword']);
      assert.equal(await current.getAttribute('aria-describedby'), 'account-error');
      await check(page, `account with an error (${locale})`);

      // Signing out at idp itself ends at idp's own signed-out page.
      await page.goto(`${idp.issuer}/session/end`);
      await page.getByRole('button', { name: text['logout.submit'] }).click();
      await page.getByRole('heading', { name: text['loggedOut.title'] }).waitFor();
      await check(page, `signed out (${locale})`);

      // Third sign-in, the phone lost: a recovery code instead of the app's code.
      await startAtApp(page);
      await password(page, locale, username);
      await page.getByRole('link', { name: text['code.useRecovery'] }).click();
      await page.getByRole('heading', { name: text['recovery.title'] }).waitFor();
      await check(page, `recovery code (${locale})`);
      await page.getByLabel(text['recovery.label']).fill(recoveryCodes[0] as string);
      await page.getByRole('button', { name: text['code.submit'] }).click();
      await page.getByRole('heading', { name: text['codes.doneTitle'] }).waitFor();
      assert.match((await page.getByRole('status').textContent()) ?? '', /9/);
      await check(page, `recovery code accepted (${locale})`);
      await page.getByRole('button', { name: text['codes.continue'] }).click();
      const shown = await secondFactorShown(page);
      assert.match(shown, /yes.*mfa/s);
      assert.doesNotMatch(shown, /otp/);

      // Error pages: an expired sign-in page, and a request from an unknown app.
      await page.goto(`${idp.issuer}/interaction/no-such-sign-in`);
      assert.equal((await page.getByRole('alert').textContent())?.trim(), text['error.expired']);
      await check(page, `error (${locale})`);
      await page.goto(`${idp.issuer}/auth?client_id=unknown-app&response_type=code&scope=openid`);
      await page.getByRole('heading', { name: text['error.title'] }).waitFor();
      await check(page, `OpenID error (${locale})`);
    });
  }

  it('keyboard only: enrolment and a code with Tab, typing and Enter', async () => {
    const username = await newUser();
    const text = CATALOGUES.en;
    const page = await fixture.openPage('en');
    await page.goto(app.url.href);
    await page.keyboard.press('Tab');
    assert.equal(await focused(page), 'a:Sign in');
    await page.keyboard.press('Enter');

    // Focus starts in the username field; Tab walks the form in reading order and back.
    await page.getByRole('heading', { name: text['login.title'] }).waitFor();
    assert.equal(await focused(page), 'input:username');
    const order = [];
    for (let step = 0; step < 3; step++) {
      await page.keyboard.press('Tab');
      order.push(await focused(page));
    }
    assert.deepEqual(order, [
      'input:password',
      `button:${text['login.submit']}`,
      `a:${text['common.cancel']}`,
    ]);
    for (let step = 0; step < 3; step++) await page.keyboard.press('Shift+Tab');
    assert.equal(await focused(page), 'input:username');
    await page.keyboard.type(username);
    await page.keyboard.press('Tab');
    await page.keyboard.type(TEST_PASSWORD);
    await page.keyboard.press('Enter');

    // The enrolment page: the key is read, then the first Tab reaches the code field.
    await page.getByRole('heading', { name: text['enrol.title'] }).waitFor();
    const key = ((await page.locator('code.key').textContent()) ?? '').trim();
    const authenticator = new Authenticator(base32Decode(key));
    await page.keyboard.press('Tab');
    assert.equal(await focused(page), 'input:code');
    await page.keyboard.type(await authenticator.nextCode());
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: text['codes.title'] }).waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await focused(page), `button:${text['codes.continue']}`);
    await page.keyboard.press('Enter');
    assert.match(await secondFactorShown(page), /yes/);

    // Signing out and in again by keyboard: the code field has the focus at once.
    await page.getByRole('button', { name: 'Sign out' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: text['logout.title'] }).waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await focused(page), `button:${text['logout.submit']}`);
    await page.keyboard.press('Enter');
    await page.waitForURL(new URL('/signed-out', app.url).href);
    await page.keyboard.press('Tab');
    assert.equal(await focused(page), 'a:Sign in again');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: text['login.title'] }).waitFor();
    await page.keyboard.type(username);
    await page.keyboard.press('Tab');
    await page.keyboard.type(TEST_PASSWORD);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: text['code.title'] }).waitFor();
    assert.equal(await focused(page), 'input:code');
    await page.keyboard.type(await authenticator.nextCode());
    await page.keyboard.press('Enter');
    assert.match(await secondFactorShown(page), /yes/);
    assert.ok(authenticator.lastStep >= stepOf(nowSeconds()));
  });

  for (const locale of ['en', 'es'] as const) {
    it(`the account page warns before the idle session ends (${locale})`, async () => {
      const text = CATALOGUES[locale];
      const username = await newUser();
      const page = await fixture.openPage(locale);
      // The page's clock runs fake, so minutes pass at once; idp's own clock stays real.
      await page.clock.install();
      await page.goto(`${idp.issuer}/account`);
      await password(page, locale, username);
      await page.getByRole('heading', { name: text['account.title'], level: 1 }).waitFor();
      assert.equal(
        (await page.locator('#idle-notice').textContent())?.trim(),
        text['account.idleNotice.other'].replace('{count}', '15'),
      );
      const dialog = page.getByRole('dialog', { name: text['account.idleTitle'] });
      assert.equal(await dialog.isVisible(), false);
      assert.notEqual(await focused(page), 'button:idle-stay', 'the closed warning took the focus');

      // Two minutes before the 15-minute idle lifetime ends, the warning opens with the focus on
      // its button.
      await page.clock.fastForward('13:01');
      await dialog.waitFor();
      assert.match((await page.locator('#idle-countdown').textContent()) ?? '', /^1:[0-5]\d$/);
      assert.equal(await focused(page), 'button:idle-stay');
      await check(page, `idle warning (${locale})`);

      // Staying renews the session at idp, and the warning closes.
      const renewed = page.waitForResponse((response) => response.url().endsWith('/keep-alive'));
      await page.keyboard.press('Enter');
      const answer = (await (await renewed).json()) as { secondsLeft: number };
      assert.ok(answer.secondsLeft > 14 * 60, `seconds left ${answer.secondsLeft}`);
      await dialog.waitFor({ state: 'hidden' });

      // Left alone again, the warning comes back and then says the session has ended.
      await page.clock.fastForward('13:01');
      await dialog.waitFor();
      await page.clock.fastForward('02:00');
      await page.locator('#idle-ended').waitFor();
      assert.equal(await page.getByRole('button', { name: text['account.idleStay'] }).count(), 0);
    });
  }
});
