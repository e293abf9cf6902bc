import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppError } from '../src/errors.ts';
import { TestBrowser } from './support/browser.ts';
import { createTestClient, startTestIdp, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import { discoverRp, signInAndExchange, startAuthorization } from './support/rp.ts';

describe('account changes during a session', () => {
  let idp: TestIdp;

  before(async () => {
    idp = await startTestIdp();
  });

  after(async () => {
    await idp?.close();
  });

  it('a disabled account must sign in again, with no server error', async () => {
    const mallory = await idp.accounts.create({ username: 'mallory', password: TEST_PASSWORD });
    const app = await createTestClient(idp);
    const config = await discoverRp(idp, app.clientId, app.clientSecret);
    const browser = new TestBrowser(idp.dispatcher);
    await signInAndExchange(idp, config, browser, app.redirectUri, 'mallory', TEST_PASSWORD);
    await idp.accounts.setDisabled(mallory.id, true);

    const silent = await startAuthorization(config, app.redirectUri, { prompt: 'none' });
    const answer = await browser.request(silent.url.href);
    assert.equal(answer.status, 303);
    assert.equal(new URL(answer.location!).searchParams.get('error'), 'login_required');

    const interactive = await startAuthorization(config, app.redirectUri);
    const page = await browser.follow(interactive.url.href, {}, app.redirectUri);
    assert.equal(page.status, 200);
    assert.match(page.body, /name="password"/);
    assert.ok(!idp.logs.some((line) => line['msg'] === 'OIDC server error'), 'server error logged');
  });

  it('names and emails with control characters are rejected', async () => {
    const cases = [
      { name: 'Mal\nbob  admin' },
      { email: 'm\u001b]0;pwned\u0007@evil.example' },
      { name: 'right\u202eleft' },
    ];
    for (const extra of cases) {
      await assert.rejects(
        idp.accounts.create({ username: 'oscar', password: TEST_PASSWORD, ...extra }),
        (error) => error instanceof AppError && error.code === 'invalid_input',
      );
    }
    await assert.rejects(
      idp.clients.create({
        clientId: 'evil',
        name: 'App\u001b[2J',
        redirectUris: ['https://a.example/cb'],
      }),
      /--name must not contain control/,
    );
  });
});
