import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type * as client from 'openid-client';
import { fetch } from 'undici';
import { es } from '../src/views/messages/es.ts';
import { alertText, TestBrowser } from './support/browser.ts';
import { createTestClient, startTestIdp, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import { discoverRp, startAuthorization } from './support/rp.ts';

const LOGO = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>';

describe('pages: language and branding', () => {
  let idp: TestIdp;
  let app: Awaited<ReturnType<typeof createTestClient>>;
  let config: client.Configuration;

  before(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'idp-brand-'));
    const logoFile = path.join(dir, 'logo.svg');
    writeFileSync(logoFile, LOGO);
    idp = await startTestIdp({
      env: { IDP_PRODUCT_NAME: 'Riverside Health', IDP_LOGO_FILE: logoFile },
    });
    app = await createTestClient(idp);
    config = await discoverRp(idp, app.clientId, app.clientSecret);
    await idp.accounts.create({ username: 'alice', password: TEST_PASSWORD });
  });

  after(async () => {
    await idp?.close();
  });

  async function loginPage(headers: Record<string, string>, extra: Record<string, string> = {}) {
    const browser = new TestBrowser(idp.dispatcher, headers);
    const start = await startAuthorization(config, app.redirectUri, extra);

    return { browser, page: await browser.follow(start.url.href, {}, app.redirectUri) };
  }

  it('Accept-Language chooses Spanish; the page says so', async () => {
    const { page } = await loginPage({ 'accept-language': 'es-MX,es;q=0.9,en;q=0.5' });
    assert.equal(page.status, 200);
    assert.match(page.body, /<html lang="es">/);
    assert.equal(page.headers.get('content-language'), 'es');
    assert.ok(page.body.includes(`<label for="username">${es['login.username']}</label>`));
  });

  it('ui_locales wins over Accept-Language and lasts through a failed attempt', async () => {
    const { browser, page } = await loginPage({ 'accept-language': 'en' }, { ui_locales: 'es' });
    assert.match(page.body, /<html lang="es">/);
    const failed = await browser.submit(page, { username: 'alice', password: 'wrong' });
    assert.equal(failed.status, 400);
    assert.equal(alertText(failed.body), es['login.invalid']);
  });

  it('an unsupported language falls back to English', async () => {
    const { page } = await loginPage({ 'accept-language': 'de-DE' }, { ui_locales: 'fr' });
    assert.match(page.body, /<html lang="en">/);
    assert.ok(page.body.includes('>Username</label>'));
  });

  it('error pages are translated; technical details stay marked as English', async () => {
    const browser = new TestBrowser(idp.dispatcher, { 'accept-language': 'es' });
    const expired = await browser.request(`${idp.issuer}/interaction/nothing-here`);
    assert.equal(expired.status, 400);
    assert.equal(alertText(expired.body), es['error.expired']);

    const start = await startAuthorization(config, 'https://elsewhere.example.test/cb');
    const rejected = await browser.request(start.url.href);
    assert.equal(rejected.status, 400);
    assert.equal(alertText(rejected.body), es['oidc.invalid_redirect_uri']);
    assert.match(rejected.body, /<span lang="en">invalid_redirect_uri: redirect_uri did not match/);
  });

  it('the product name and logo are on every page', async () => {
    const { page } = await loginPage({});
    assert.ok(page.body.includes('<img class="logo" src="/static/logo" alt="Riverside Health">'));
    assert.match(page.body, /<title>Sign in · Riverside Health<\/title>/);

    const logo = await fetch(`${idp.issuer}/static/logo`, { dispatcher: idp.dispatcher });
    assert.equal(logo.status, 200);
    assert.equal(logo.headers.get('content-type'), 'image/svg+xml');
    assert.equal(await logo.text(), LOGO);
  });
});
