import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as client from 'openid-client';
import { fetch } from 'undici';
import { CLIENT_CACHE_SECONDS } from '../src/oidc/client-adapter.ts';
import { ACCOUNT_CACHE_SECONDS } from '../src/oidc/account.ts';
import { alertText, TestBrowser } from './support/browser.ts';
import {
  createTestClient,
  createTestSetup,
  freePort,
  startTestIdp,
  TEST_PASSWORD,
  type TestIdp,
  type TestSetup,
} from './support/idp.ts';
import { eventually } from './support/wait.ts';
import { type OwnRedis, startOwnRedis } from './support/redis-server.ts';
import { discoverRp, signInAndExchange, startAuthorization } from './support/rp.ts';

const messages = (idp: TestIdp) => idp.logs.map((line) => String(line['msg']));

/** Log lines at warn level or above, which an outage must not multiply. */
const problems = (idp: TestIdp, since: number) =>
  idp.logs.slice(since).filter((line) => Number(line['level']) >= 40);

type Rp = Awaited<ReturnType<typeof discoverRp>>;

async function readiness(idp: TestIdp) {
  const response = await fetch(`${idp.url}/readyz`, { dispatcher: idp.dispatcher });

  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/**
 * Expects the token endpoint to answer 503 with the OAuth error temporarily_unavailable.
 * openid-client parses OAuth error bodies only on 400 and 401, so it hands over the response.
 */
async function assertTemporarilyUnavailable(work: Promise<unknown>) {
  let response: { status: number; json(): Promise<unknown> } | undefined;
  await assert.rejects(work, (error: Error & { cause?: typeof response }) => {
    assert.equal(typeof error.cause?.json, 'function', `unexpected error: ${error.message}`);
    response = error.cause;

    return true;
  });
  assert.equal(response?.status, 503);
  const body = (await response!.json()) as Record<string, unknown>;
  assert.equal(body['error'], 'temporarily_unavailable');
  assert.match(String(body['error_description']), /try again/);
}

/** Starts a sign-in, and returns the browser parked on the login page. */
async function openLoginPage(idp: TestIdp, rp: Rp, redirectUri: string) {
  const browser = new TestBrowser(idp.dispatcher);
  const start = await startAuthorization(rp, redirectUri);
  const page = await browser.follow(start.url.href, {}, redirectUri);
  assert.equal(page.status, 200);

  return { browser, page };
}

/** A dependency a test can take away and bring back, with the idp that uses it. */
interface Outage {
  idp: TestIdp;
  cut(): Promise<void>;
  restore(): Promise<void>;
  cleanup(): Promise<void>;
}

/**
 * The same checks for either dependency: while it is away, apps get temporarily_unavailable with
 * 503 and people a 503 page, /healthz stays 200, /readyz names it, the log says so once; when it
 * is back everything works again without a restart.
 */
function describeOutage(label: 'Redis' | 'Postgres', open: () => Promise<Outage>) {
  describe(`${label} outage`, () => {
    let outage: Outage;
    let idp: TestIdp;
    let app: Awaited<ReturnType<typeof createTestClient>>;
    let rp: Rp;

    before(async () => {
      outage = await open();
      idp = outage.idp;
      app = await createTestClient(idp);
      rp = await discoverRp(idp, app.clientId, app.clientSecret);
      await idp.accounts.create({ username: 'alice', password: TEST_PASSWORD });
    });

    after(async () => {
      await outage?.cleanup();
    });

    it('503 and temporarily_unavailable while away, one log line each way, then recovery', async () => {
      const { tokens } = await signInAndExchange(
        idp,
        rp,
        new TestBrowser(idp.dispatcher),
        app.redirectUri,
        'alice',
        TEST_PASSWORD,
      );
      const parked = await openLoginPage(idp, rp, app.redirectUri);
      const logMark = idp.logs.length;

      await outage.cut();
      await eventually(`readiness to report ${label}`, async () => {
        const { status, body } = await readiness(idp);

        return status === 503 && body['reason'] === `${label} not answering`;
      });
      const health = await fetch(`${idp.url}/healthz`, { dispatcher: idp.dispatcher });
      assert.equal(health.status, 200, 'the process itself stays alive');

      if (label === 'Postgres') {
        // The node keeps the app for CLIENT_CACHE_SECONDS and the user for ACCOUNT_CACHE_SECONDS
        // after the sign-in read them, so the checks below wait until both have expired.
        await sleep(Math.max(CLIENT_CACHE_SECONDS, ACCOUNT_CACHE_SECONDS) * 1000);
      }
      for (let attempt = 0; attempt < 3; attempt++) {
        await assertTemporarilyUnavailable(client.refreshTokenGrant(rp, tokens.refresh_token!));
      }
      const submitted = await parked.browser.submit(parked.page, {
        username: 'alice',
        password: TEST_PASSWORD,
      });
      assert.equal(submitted.status, 503);
      assert.equal(submitted.headers.get('retry-after'), '30');
      assert.match(alertText(submitted.body) ?? '', /unavailable for a moment/);
      assert.ok(!submitted.body.includes('Error:'), 'no stack trace');

      const start = await startAuthorization(rp, app.redirectUri);
      const answer = await new TestBrowser(idp.dispatcher).request(start.url.href);
      if (label === 'Redis') {
        // The app is known (Postgres answers), so the browser goes back to it with the error.
        assert.equal(answer.status, 303);
        const back = new URL(answer.location!);
        assert.equal(back.searchParams.get('error'), 'temporarily_unavailable');
        assert.equal(back.searchParams.get('state'), start.state);
      } else {
        // Without Postgres the app cannot be looked up, so the browser gets the page instead.
        assert.equal(answer.status, 503);
        assert.equal(answer.location, undefined);
      }

      assert.deepEqual(
        problems(idp, logMark).map((line) => line['msg']),
        [`${label} is unavailable: requests that need it get 503 until it is reachable again`],
        'exactly one warning or error for the whole outage',
      );

      await outage.restore();
      await eventually(`readiness after ${label} is back`, async () => {
        return (await readiness(idp)).status === 200;
      });
      assert.equal(messages(idp).filter((msg) => msg === `${label} is available again`).length, 1);
      const refreshed = await client.refreshTokenGrant(rp, tokens.refresh_token!);
      assert.ok(refreshed.access_token, 'the refresh token works again without a restart');
    });
  });
}

describeOutage('Redis', async () => {
  // Append-only file on, as in docker-compose.yml, so tokens outlive the restart.
  const redis: OwnRedis = await startOwnRedis(['--appendonly', 'yes']);
  const idp = await startTestIdp({ env: { REDIS_URL: redis.url } });

  return {
    idp,
    cut: () => redis.stop(),
    restore: () => redis.start(),
    async cleanup() {
      await idp.close();
      await redis.destroy();
    },
  };
});

/** A TCP relay to Postgres that can be cut and restored, as a network outage would. */
async function startRelay(target: URL) {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((inbound) => {
        const upstream = connect(Number(target.port || 5432), target.hostname);
        track(inbound);
        track(upstream);
        inbound.pipe(upstream).pipe(inbound);
        inbound.on('close', () => upstream.destroy());
        upstream.on('close', () => inbound.destroy());
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
  await listen();

  return {
    port,
    cut: () =>
      new Promise<void>((resolve) => {
        server?.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
    restore: listen,
  };
}

describeOutage('Postgres', async () => {
  const setup: TestSetup = await createTestSetup();
  const relay = await startRelay(new URL(setup.testDatabase.url));
  const relayed = new URL(setup.testDatabase.url);
  relayed.hostname = '127.0.0.1';
  relayed.port = String(relay.port);
  const idp = await startTestIdp({
    setup,
    env: { IDP_PORT: setup.env['IDP_PORT']!, DATABASE_URL: relayed.href },
  });

  return {
    idp,
    cut: () => relay.cut(),
    restore: () => relay.restore(),
    async cleanup() {
      await idp.close();
      await relay.cut();
      await setup.cleanup();
    },
  };
});
