import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hash } from '@node-rs/argon2';
import { needsRehash, verifyPassword } from '../src/accounts/password.ts';
import { alertText, parseForms, TestBrowser } from './support/browser.ts';
import { type IdpFixture, openIdpFixture } from './support/fixture.ts';
import { createTestClient, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import { discoverRp, signInAndExchange, startAuthorization } from './support/rp.ts';

describe('consent and password upgrade', () => {
  let fixture: IdpFixture;
  let idp: TestIdp;

  before(async () => {
    fixture = await openIdpFixture({
      users: {
        heidi: { username: 'heidi', password: TEST_PASSWORD, email: 'heidi@example.org' },
      },
    });
    idp = fixture.idp;
  });

  after(async () => {
    await fixture?.close();
  });

  /** Signs in to a consent client and returns the consent page. */
  async function reachConsent(browser: TestBrowser, clientId: string, redirectUri: string) {
    const config = await discoverRp(idp, clientId, undefined);
    const start = await startAuthorization(config, redirectUri);
    const loginPage = await browser.follow(start.url.href, {}, redirectUri);
    const consentPage = await browser.submit(
      loginPage,
      { username: 'heidi', password: TEST_PASSWORD },
      redirectUri,
    );

    return { config, start, consentPage };
  }

  it('a consent client asks, and Allow returns a code', async () => {
    const app = await createTestClient(idp, { consent: true, name: 'Partner <Clinic>' });
    const browser = new TestBrowser(idp.dispatcher);
    const { consentPage } = await reachConsent(browser, app.clientId, app.redirectUri);
    assert.equal(consentPage.status, 200);
    assert.equal(consentPage.headers.get('cache-control'), 'no-store');
    assert.match(consentPage.body, /Partner &lt;Clinic&gt;/);
    assert.match(consentPage.body, /your email address/);
    const done = await browser.submit(consentPage, { decision: 'allow' }, app.redirectUri);
    const callback = new URL(done.location!);
    assert.ok(callback.searchParams.get('code'));

    // The grant is remembered: the next sign-in of this browser does not ask again.
    const config = await discoverRp(idp, app.clientId, app.clientSecret);
    const again = await startAuthorization(config, app.redirectUri);
    const second = await browser.follow(again.url.href, {}, app.redirectUri);
    assert.ok(new URL(second.location!).searchParams.get('code'));
  });

  it('Deny returns access_denied to the app', async () => {
    const app = await createTestClient(idp, { consent: true });
    const browser = new TestBrowser(idp.dispatcher);
    const { consentPage } = await reachConsent(browser, app.clientId, app.redirectUri);
    const done = await browser.submit(consentPage, { decision: 'deny' }, app.redirectUri);
    const callback = new URL(done.location!);
    assert.equal(callback.searchParams.get('error'), 'access_denied');
    assert.equal(callback.searchParams.get('code'), null);
  });

  it("the operator's own app skips consent", async () => {
    const app = await createTestClient(idp);
    const config = await discoverRp(idp, app.clientId, app.clientSecret);
    const browser = new TestBrowser(idp.dispatcher);
    const { tokens } = await signInAndExchange(
      idp,
      config,
      browser,
      app.redirectUri,
      'heidi',
      TEST_PASSWORD,
    );
    assert.equal(tokens.claims()?.['email'], 'heidi@example.org');
  });

  it('Cancel on the login page returns access_denied', async () => {
    const app = await createTestClient(idp);
    const config = await discoverRp(idp, app.clientId, app.clientSecret);
    const browser = new TestBrowser(idp.dispatcher);
    const start = await startAuthorization(config, app.redirectUri);
    const loginPage = await browser.follow(start.url.href, {}, app.redirectUri);
    const cancel = /href="([^"]*\/abort)"/.exec(loginPage.body)?.[1];
    assert.ok(cancel);
    const done = await browser.follow(new URL(cancel, loginPage.url).href, {}, app.redirectUri);
    assert.equal(new URL(done.location!).searchParams.get('error'), 'access_denied');
  });

  it('a consent form posted at the login step is rejected', async () => {
    const app = await createTestClient(idp, { consent: true });
    const config = await discoverRp(idp, app.clientId, app.clientSecret);
    const browser = new TestBrowser(idp.dispatcher);
    const start = await startAuthorization(config, app.redirectUri);
    const loginPage = await browser.follow(start.url.href, {}, app.redirectUri);
    const action = parseForms(loginPage.body)[0]!.action.replace(/\/login$/, '/consent');
    const result = await browser.follow(
      new URL(action, loginPage.url).href,
      { form: { decision: 'allow' } },
      app.redirectUri,
    );
    assert.equal(result.status, 400);
    assert.equal(result.location, undefined);
    assert.match(alertText(result.body) ?? '', /expired/);
  });

  it('an outdated password hash is upgraded at sign-in', async () => {
    const ivan = await idp.accounts.create({ username: 'ivan', password: TEST_PASSWORD });
    const weak = await hash(TEST_PASSWORD, {
      algorithm: 2,
      memoryCost: 19456,
      timeCost: 2,
      parallelism: 1,
    });
    await idp.accounts.replaceHash(ivan.id, ivan.passwordHash, weak);
    const app = await createTestClient(idp);
    const config = await discoverRp(idp, app.clientId, app.clientSecret);
    await signInAndExchange(
      idp,
      config,
      new TestBrowser(idp.dispatcher),
      app.redirectUri,
      'ivan',
      TEST_PASSWORD,
    );
    const upgraded = await idp.accounts.get('ivan');
    assert.notEqual(upgraded.passwordHash, weak);
    assert.equal(needsRehash(upgraded.passwordHash), false);
    assert.ok(await verifyPassword(upgraded.passwordHash, TEST_PASSWORD));
  });

  it('an oversized or malformed form is rejected plainly', async () => {
    const app = await createTestClient(idp);
    const config = await discoverRp(idp, app.clientId, app.clientSecret);
    const browser = new TestBrowser(idp.dispatcher);
    const start = await startAuthorization(config, app.redirectUri);
    const loginPage = await browser.follow(start.url.href, {}, app.redirectUri);
    const result = await browser.submit(loginPage, {
      username: 'heidi',
      password: 'x'.repeat(40_000),
    });
    assert.equal(result.status, 413);
    assert.doesNotMatch(result.body, /at .*\.ts:\d+/);
    assert.match(alertText(result.body) ?? '', /too large/);
  });
});
