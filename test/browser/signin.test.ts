import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { CATALOGUES, type Locale } from '../../src/views/i18n.ts';
import { startTestCaseApp, type TestCaseApp } from '../support/case-app.ts';
import {
  assertAccessible,
  assertNoSidewaysScroll,
  launchChromium,
  type TestChromium,
} from '../support/chromium.ts';
import { startTestIdp, TEST_PASSWORD, type TestIdp } from '../support/idp.ts';

/** Describes the focused element, so tab order can be checked step by step. */
function focused(page: Page): Promise<string> {
  return page.evaluate(() => {
    const element = document.activeElement;
    if (!element) return 'nothing';
    const name = element.id || element.textContent?.trim() || '';

    return `${element.tagName.toLowerCase()}:${name}`;
  });
}

describe('browser sign-in through the example app (Chromium, axe-core)', () => {
  let idp: TestIdp;
  let app: TestCaseApp;
  let consentApp: TestCaseApp;
  let chromium: TestChromium;

  before(async () => {
    idp = await startTestIdp({ env: { IDP_PRODUCT_NAME: 'Riverside Health' } });
    await idp.accounts.create({
      username: 'Alice',
      password: TEST_PASSWORD,
      name: 'Alice Example',
      email: 'alice@example.org',
    });
    app = await startTestCaseApp(idp);
    consentApp = await startTestCaseApp(
      idp,
      { consent: true, name: 'Partner Clinic' },
      '127.0.0.1',
    );
    chromium = await launchChromium(idp.certificates.certFile);
  });

  after(async () => {
    await chromium?.close();
    await app?.close();
    await consentApp?.close();
    await idp?.close();
  });

  /** Opens a page with its own cookies, whose browser requests the given language. */
  function freshPage(locale: Locale = 'en', viewport?: { width: number; height: number }) {
    return chromium.newPage({ locale: locale === 'es' ? 'es-ES' : 'en-GB', viewport });
  }

  async function signIn(page: Page, locale: Locale, password = TEST_PASSWORD): Promise<void> {
    const text = CATALOGUES[locale];
    await page.getByLabel(text['login.username']).fill('alice');
    await page.getByLabel(text['login.password']).fill(password);
    await page.getByRole('button', { name: text['login.submit'] }).click();
  }

  for (const locale of ['en', 'es'] as const) {
    const text = CATALOGUES[locale];

    it(`axe on every page (${locale})`, async () => {
      const page = await freshPage(locale);
      await page.goto(app.url.href);
      await assertAccessible(page, 'the app start page');
      await page.getByRole('link', { name: 'Sign in', exact: true }).click();

      await page.getByRole('heading', { name: text['login.title'] }).waitFor();
      assert.equal(await page.getAttribute('html', 'lang'), locale);
      assert.match(await page.title(), new RegExp(`${text['login.title']} · Riverside Health`));
      await assertAccessible(page, `the login page (${locale})`);

      await signIn(page, locale, 'not the password');
      const alert = page.getByRole('alert');
      assert.equal((await alert.textContent())?.trim(), text['login.invalid']);
      const username = page.getByLabel(text['login.username']);
      assert.equal(await username.getAttribute('aria-invalid'), 'true');
      assert.equal(await username.getAttribute('aria-describedby'), await alert.getAttribute('id'));
      assert.match(await page.title(), /^Error: /);
      await assertAccessible(page, `the login page with an error (${locale})`);

      await signIn(page, locale);
      await page.locator('#user-name').waitFor();
      assert.equal(await page.locator('#user-name').textContent(), 'Alice Example');
      assert.match((await page.locator('#second-factor').textContent()) ?? '', /no.*pwd/s);

      // An app registered with consent shows the consent page, and the idp session carries over.
      await page.goto(consentApp.url.href);
      await page.getByRole('link', { name: 'Sign in', exact: true }).click();
      await page.getByRole('heading', { name: text['consent.title'] }).waitFor();
      assert.ok((await page.locator('main').textContent())?.includes(text['scope.email']));
      await assertAccessible(page, `the consent page (${locale})`);
      await page.getByRole('button', { name: text['consent.allow'] }).click();
      await page.locator('#user-name').waitFor();

      // Signing out at idp itself: the confirmation, then idp's own signed-out page.
      await page.goto(`${idp.issuer}/session/end`);
      await page.getByRole('heading', { name: text['logout.title'] }).waitFor();
      await assertAccessible(page, `the logout page (${locale})`);
      await page.getByRole('button', { name: text['logout.submit'] }).click();
      await page.getByRole('heading', { name: text['loggedOut.title'] }).waitFor();
      await assertAccessible(page, `the signed-out page (${locale})`);

      await page.goto(`${idp.issuer}/interaction/no-such-sign-in`);
      assert.equal((await page.getByRole('alert').textContent())?.trim(), text['error.expired']);
      await assertAccessible(page, `the error page (${locale})`);

      await page.goto(`${idp.issuer}/auth?client_id=unknown-app&response_type=code&scope=openid`);
      await page.getByRole('heading', { name: text['error.title'] }).waitFor();
      await assertAccessible(page, `an OpenID error page (${locale})`);
    });
  }

  it('axe catches an unlabelled field', async () => {
    const page = await freshPage();
    await page.setContent('<html lang="en"><title>t</title><main><input id="x"></main></html>');
    await assert.rejects(assertAccessible(page, 'a broken page'), /label/);
  });

  it('axe in the dark colour scheme', async () => {
    const page = await freshPage();
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(new URL('/login', app.url).href);
    await signIn(page, 'en', 'wrong');
    await page.getByRole('alert').waitFor();
    await assertAccessible(page, 'the login page in the dark scheme');
  });

  it('ui_locales from the app wins over Accept-Language', async () => {
    const page = await freshPage('en');
    await page.goto(new URL('/login?lang=es', app.url).href);
    await page.getByRole('heading', { name: CATALOGUES.es['login.title'] }).waitFor();
    assert.equal(await page.getAttribute('html', 'lang'), 'es');
    // The language stays through a failed attempt, which posts the form.
    await signIn(page, 'es', 'wrong');
    assert.equal(
      (await page.getByRole('alert').textContent())?.trim(),
      CATALOGUES.es['login.invalid'],
    );
  });

  it('keyboard-only sign-in and sign-out', async () => {
    const page = await freshPage();
    await page.goto(app.url.href);
    await page.keyboard.press('Tab');
    assert.equal(await focused(page), 'a:Sign in');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();

    // Focus starts in the username field; Tab walks the page in reading order and back.
    assert.equal(await focused(page), 'input:username');
    const order = [];
    for (let step = 0; step < 3; step++) {
      await page.keyboard.press('Tab');
      order.push(await focused(page));
    }
    assert.deepEqual(order, ['input:password', 'button:Sign in', 'a:Cancel and return to the app']);
    for (let step = 0; step < 3; step++) await page.keyboard.press('Shift+Tab');
    assert.equal(await focused(page), 'input:username');

    await page.keyboard.type('alice');
    await page.keyboard.press('Tab');
    await page.keyboard.type(TEST_PASSWORD);
    await page.keyboard.press('Enter');
    await page.locator('#user-name').waitFor();

    // Signing out by keyboard too: the app's button, then idp's confirmation.
    await page.getByRole('button', { name: 'Sign out' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Sign out' }).waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await focused(page), `button:${CATALOGUES.en['logout.submit']}`);
    await page.keyboard.press('Enter');
    await page.waitForURL(new URL('/signed-out', app.url).href);
  });

  it('visible focus outline', async () => {
    const page = await freshPage();
    await page.goto(new URL('/login', app.url).href);
    await page.keyboard.press('Tab');
    const outline = await page.evaluate(() => {
      const style = getComputedStyle(document.activeElement as Element);

      return { width: style.outlineWidth, style: style.outlineStyle };
    });
    assert.equal(outline.style, 'solid');
    assert.ok(parseFloat(outline.width) >= 2, `outline ${outline.width}`);
  });

  it('back-channel logout ends the app session', async () => {
    const page = await freshPage();
    await page.goto(new URL('/login', app.url).href);
    await signIn(page, 'en');
    await page.locator('#user-name').waitFor();

    await page.goto(`${idp.issuer}/session/end`);
    await page.getByRole('button', { name: CATALOGUES.en['logout.submit'] }).click();
    await page.getByRole('heading', { name: 'Signed out' }).waitFor();
    assert.ok(app.logs.some((line) => /back-channel logout: .* ended 1 session/.test(line)));

    await page.goto(app.url.href);
    await page.getByRole('heading', { name: 'Welcome' }).waitFor();
  });

  it('reflow at 320 CSS pixels (400 % zoom)', async () => {
    const page = await freshPage('es', { width: 320, height: 640 });
    await page.goto(new URL('/login', app.url).href);
    await page.getByRole('heading', { name: CATALOGUES.es['login.title'] }).waitFor();
    await assertNoSidewaysScroll(page, 'the login page');
    await signIn(page, 'es', 'wrong');
    await assertNoSidewaysScroll(page, 'the login page with an error');
    await page.goto(`${idp.issuer}/interaction/no-such-sign-in`);
    await assertNoSidewaysScroll(page, 'the error page');
  });
});

describe('browser sign-in with JavaScript off', () => {
  let idp: TestIdp;
  let app: TestCaseApp;
  let chromium: TestChromium;

  before(async () => {
    idp = await startTestIdp();
    await idp.accounts.create({ username: 'alice', password: TEST_PASSWORD, name: 'Alice' });
    app = await startTestCaseApp(idp);
    chromium = await launchChromium(idp.certificates.certFile);
  });

  after(async () => {
    await chromium?.close();
    await app?.close();
    await idp?.close();
  });

  it('sign-in and sign-out without JavaScript', async () => {
    const page = await chromium.newPage({ javaScriptEnabled: false });
    await page.goto(app.url.href);
    await page.getByRole('link', { name: 'Sign in', exact: true }).click();
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill(TEST_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#user-name').waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: CATALOGUES.en['logout.submit'] }).click();
    await page.waitForURL(new URL('/signed-out', app.url).href);
  });
});
