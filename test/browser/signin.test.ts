import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { CATALOGUES, type Locale } from '../../src/views/i18n.ts';
import type { TestCaseApp } from '../support/case-app.ts';
import {
  assertAccessible,
  type ChromiumFixture,
  openChromiumFixture,
} from '../support/chromium.ts';
import { TEST_PASSWORD, type TestIdp } from '../support/idp.ts';

describe('browser sign-in through the example app (Chromium, axe-core)', () => {
  let fixture: ChromiumFixture;
  let idp: TestIdp;
  let app: TestCaseApp;

  before(async () => {
    fixture = await openChromiumFixture({
      idp: { env: { IDP_PRODUCT_NAME: 'Riverside Health' } },
      users: {
        alice: {
          username: 'Alice',
          password: TEST_PASSWORD,
          name: 'Alice Example',
          email: 'alice@example.org',
        },
      },
      consentApp: true,
    });
    ({ idp, app } = fixture);
  });

  after(async () => {
    await fixture?.close();
  });

  async function signIn(page: Page, locale: Locale, password = TEST_PASSWORD): Promise<void> {
    const text = CATALOGUES[locale];
    await page.getByLabel(text['login.username']).fill('alice');
    await page.getByLabel(text['login.password']).fill(password);
    await page.getByRole('button', { name: text['login.submit'] }).click();
  }

  it('axe catches an unlabelled field', async () => {
    const page = await fixture.openPage();
    await page.setContent('<html lang="en"><title>t</title><main><input id="x"></main></html>');
    await assert.rejects(assertAccessible(page, 'a broken page'), /label/);
  });

  it('axe in the dark colour scheme', async () => {
    const page = await fixture.openPage();
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(new URL('/login', app.url).href);
    await signIn(page, 'en', 'wrong');
    await page.getByRole('alert').waitFor();
    await assertAccessible(page, 'the login page in the dark scheme');
  });

  it('ui_locales from the app wins over Accept-Language', async () => {
    const page = await fixture.openPage('en');
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
    const page = await fixture.openPage();
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
    const page = await fixture.openPage();
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
  let fixture: ChromiumFixture;
  let app: TestCaseApp;

  before(async () => {
    fixture = await openChromiumFixture({
      users: { alice: { username: 'alice', password: TEST_PASSWORD, name: 'Alice' } },
    });
    ({ app } = fixture);
  });

  after(async () => {
    await fixture?.close();
  });

  it('sign-in and sign-out without JavaScript', async () => {
    const page = await fixture.chromium.newPage({ javaScriptEnabled: false });
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
