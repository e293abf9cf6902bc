import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import { fetch } from 'undici';
import { TestBrowser } from './support/browser.ts';
import { createTestClient, startTestIdp, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import { discoverRp, signInAndExchange, signInForCode } from './support/rp.ts';

/** Requests sent at once with the same code or refresh token. */
const RACERS = 8;

/**
 * Sends RACERS requests at once and checks that exactly one got tokens and the others
 * invalid_grant. Returns the tokens of the one.
 */
async function race(
  send: () => Promise<client.TokenEndpointResponse>,
): Promise<client.TokenEndpointResponse> {
  const results = await Promise.allSettled(Array.from({ length: RACERS }, send));
  const granted = results.filter((result) => result.status === 'fulfilled');
  const errors = results
    .filter((result) => result.status === 'rejected')
    .map((result) => String((result.reason as { error?: string }).error));
  assert.equal(granted.length, 1, `errors: ${errors.join(', ')}`);
  assert.deepEqual(new Set(errors), new Set(['invalid_grant']));

  return (granted[0] as PromiseFulfilledResult<client.TokenEndpointResponse>).value;
}

/*
 * An authorization code and a rotated refresh token work once, also when a client, or an attacker
 * who copied one, sends it in several requests at the same moment. Only one request gets tokens,
 * and as with a second use one after the other, the tokens issued from it stop working.
 */
for (const storage of ['Redis', 'memory'] as const) {
  describe(`single use under concurrent requests, sessions in ${storage}`, () => {
    let idp: TestIdp;
    let config: client.Configuration;
    let redirectUri: string;

    before(async () => {
      idp = await startTestIdp({ env: storage === 'memory' ? { REDIS_URL: '' } : {} });
      const app = await createTestClient(idp);
      config = await discoverRp(idp, app.clientId, app.clientSecret);
      redirectUri = app.redirectUri;
      await idp.accounts.create({ username: 'alice', password: TEST_PASSWORD });
    });

    after(async () => {
      await idp?.close();
    });

    /**
     * Checks what follows a race: a warning for the grant type, the raced value `sent` kept out
     * of the log, and the winner's tokens stopped too, since a second use revokes the grant.
     */
    const assertReuseHandled = async (
      grantType: string,
      sent: string,
      winner: client.TokenEndpointResponse,
    ) => {
      const warnings = idp.logs.filter(
        (line) =>
          line['msg'] ===
            'a used authorization code or refresh token was sent again, so its grant is revoked' &&
          line['grantType'] === grantType,
      );
      assert.ok(warnings.length >= 1, 'no warning logged');
      assert.ok(!idp.rawLog().includes(sent), 'the raced value was logged');
      const introspected = await client.tokenIntrospection(config, winner.access_token);
      assert.equal(introspected.active, false);
      await assert.rejects(
        client.refreshTokenGrant(config, winner.refresh_token!),
        (error: Error & { error?: string }) => error.error === 'invalid_grant',
      );
    };

    // Opens a keep-alive connection per racer first, so that no racer waits for a TLS handshake
    // and the requests reach idp together.
    const openConnections = () =>
      Promise.all(
        Array.from({ length: RACERS }, async () => {
          const response = await fetch(new URL('/.well-known/openid-configuration', idp.issuer), {
            dispatcher: idp.dispatcher,
          });
          await response.arrayBuffer();
        }),
      );

    it('code sent at once: one request gets tokens', async () => {
      const browser = new TestBrowser(idp.dispatcher);
      const { callback, checks } = await signInForCode(
        config,
        browser,
        redirectUri,
        'alice',
        TEST_PASSWORD,
      );

      await openConnections();
      const winner = await race(() => client.authorizationCodeGrant(config, callback, checks));

      await assertReuseHandled('authorization_code', callback.searchParams.get('code')!, winner);
    });

    it('refresh token sent at once: one request gets tokens', async () => {
      const browser = new TestBrowser(idp.dispatcher);
      const { tokens } = await signInAndExchange(
        idp,
        config,
        browser,
        redirectUri,
        'alice',
        TEST_PASSWORD,
      );

      await openConnections();
      const winner = await race(() => client.refreshTokenGrant(config, tokens.refresh_token!));

      await assertReuseHandled('refresh_token', tokens.refresh_token!, winner);
    });
  });
}
