import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type * as client from 'openid-client';
import { sessionLifetime } from '../src/oidc/provider.ts';
import { TestBrowser } from './support/browser.ts';
import { createTestClient, startTestIdp, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import { discoverRp, signInAndExchange, startAuthorization } from './support/rp.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('session lifetime', () => {
  it('idle lifetime, capped by the absolute one', () => {
    const now = 1_000_000;
    assert.equal(sessionLifetime(now - 60, 900, 8 * 3600, now), 900);
    assert.equal(sessionLifetime(now - 8 * 3600 + 100, 900, 8 * 3600, now), 100);
    assert.equal(sessionLifetime(now - 9 * 3600, 900, 8 * 3600, now), 1);
    assert.equal(sessionLifetime(undefined, 900, 8 * 3600, now), 900);
  });

  describe('against a running idp', () => {
    let idp: TestIdp;
    let app: Awaited<ReturnType<typeof createTestClient>>;
    let config: client.Configuration;

    before(async () => {
      // Each use comes 2 s after the last, so a slow sign-in or exchange on a loaded machine still
      // leaves 3 s of the idle lifetime.
      idp = await startTestIdp({ env: { IDP_SESSION_IDLE: '5s', IDP_SESSION_MAX: '8s' } });
      app = await createTestClient(idp);
      config = await discoverRp(idp, app.clientId, app.clientSecret);
      await idp.accounts.create({ username: 'alice', password: TEST_PASSWORD });
    });

    after(async () => {
      await idp?.close();
    });

    /** Asks for a code without a login page; returns the error, or undefined for a code. */
    async function silentSignIn(browser: TestBrowser): Promise<string | undefined> {
      const start = await startAuthorization(config, app.redirectUri, { prompt: 'none' });
      const answer = await browser.follow(start.url.href, {}, app.redirectUri);
      const back = new URL(answer.location as string);

      return back.searchParams.get('error') ?? undefined;
    }

    it('use renews the idle lifetime until the absolute one ends', async () => {
      const browser = new TestBrowser(idp.dispatcher);
      await signInAndExchange(idp, config, browser, app.redirectUri, 'alice', TEST_PASSWORD);
      await sleep(2000);
      assert.equal(await silentSignIn(browser), undefined, 'used within the idle lifetime');
      await sleep(2000);
      assert.equal(await silentSignIn(browser), undefined, 'renewed by the last use');
      await sleep(4500);
      assert.equal(await silentSignIn(browser), 'login_required', 'past the absolute lifetime');
    });

    it('a session left idle ends', async () => {
      const browser = new TestBrowser(idp.dispatcher);
      await signInAndExchange(idp, config, browser, app.redirectUri, 'alice', TEST_PASSWORD);
      await sleep(5500);
      assert.equal(await silentSignIn(browser), 'login_required');
    });
  });
});
