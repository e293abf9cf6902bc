import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { CATALOGUES, type Locale } from '../../src/views/i18n.ts';
import { startTestCaseApp, type TestCaseApp } from '../support/case-app.ts';
import { assertAccessible, launchChromium, type TestChromium } from '../support/chromium.ts';
import { startTestIdp, TEST_PASSWORD, type TestIdp } from '../support/idp.ts';

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
