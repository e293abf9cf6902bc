import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fetch } from 'undici';
import { configSchema } from '../src/config.ts';
import { type Database, openDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import {
  advanceSigningKeys,
  ensureSigningKeys,
  listSigningKeys,
  loadSigningKeys,
  rotateSigningKeys,
} from '../src/oidc/keys.ts';
import { ClientStore } from '../src/oidc/clients.ts';
import { Encryptor } from '../src/security/encryption.ts';
import { TestBrowser } from './support/browser.ts';
import {
  createTestClient,
  createTestSetup,
  freePort,
  startTestIdp,
  TEST_PASSWORD,
  type TestIdp,
} from './support/idp.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';
import { runIdp } from './support/cli.ts';
import { REPO_ROOT } from './support/process.ts';
import { discoverRp, signInAndExchange, startAuthorization } from './support/rp.ts';
import * as client from 'openid-client';

/** Reads one sample of the Prometheus text format, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelText = /\{([^}]*)\}/.exec(line)?.[1] ?? '';
    if (wanted.every((pair) => labelText.split(',').includes(pair))) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }

  return 0;
}

describe('metrics and health endpoints', () => {
  let idp: TestIdp;
  let metricsPort: number;

  before(async () => {
    metricsPort = await freePort();
    idp = await startTestIdp({ env: { IDP_METRICS_PORT: String(metricsPort) } });
    await idp.accounts.create({ username: 'alice', password: TEST_PASSWORD });
  });

  after(async () => {
    await idp?.close();
  });

  const scrape = async () => {
    const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);

    return response.text();
  };

  it('counters move after a sign-in, a failure and a refresh', async () => {
    const app = await createTestClient(idp);
    const rp = await discoverRp(idp, app.clientId, app.clientSecret);
    const beforeText = await scrape();

    const browser = new TestBrowser(idp.dispatcher);
    const start = await startAuthorization(rp, app.redirectUri);
    const page = await browser.follow(start.url.href, {}, app.redirectUri);
    await browser.submit(page, { username: 'alice', password: 'not the password' });
    const { tokens } = await signInAndExchange(
      idp,
      rp,
      browser,
      app.redirectUri,
      'alice',
      TEST_PASSWORD,
    );
    await client.refreshTokenGrant(rp, tokens.refresh_token!);
    const text = await scrape();

    const moved = (name: string, labels: Record<string, string>) =>
      sample(text, name, labels) - sample(beforeText, name, labels);
    assert.equal(moved('idp_sign_ins_total', { outcome: 'success' }), 1);
    assert.equal(moved('idp_sign_ins_total', { outcome: 'failed' }), 1);
    assert.equal(moved('idp_tokens_issued_total', { grant_type: 'authorization_code' }), 1);
    assert.equal(moved('idp_tokens_issued_total', { grant_type: 'refresh_token' }), 1);
    const tokenRequests = moved('idp_http_request_duration_seconds_count', {
      method: 'POST',
      route: '/token',
      status: '200',
    });
    assert.equal(tokenRequests, 2);
    assert.ok(
      moved('idp_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/interaction/:uid/login',
        status: '400',
      }) >= 1,
      'interaction routes are labelled by pattern, not by uid',
    );
    assert.ok(!text.includes(start.url.searchParams.get('state')!), 'no request value in labels');
    assert.equal(sample(text, 'idp_redis_connected'), 1);
    assert.equal(sample(text, 'idp_dependency_up', { dependency: 'database' }), 1);
    assert.equal(sample(text, 'idp_dependency_up', { dependency: 'redis' }), 1);
    assert.ok(sample(text, 'idp_database_pool_connections', { state: 'total' }) >= 1);
    assert.ok(sample(text, 'process_cpu_user_seconds_total') > 0, 'process metrics');
  });

  it('the main port hides /metrics when it has its own port', async () => {
    const response = await fetch(`${idp.url}/metrics`, { dispatcher: idp.dispatcher });
    assert.equal(response.status, 404);
  });

  it('healthz and readyz answer; readyz names the checks', async () => {
    const health = await fetch(`${idp.url}/healthz`, { dispatcher: idp.dispatcher });
    assert.equal(health.status, 200);
    const ready = await fetch(`${idp.url}/readyz`, { dispatcher: idp.dispatcher });
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), {
      status: 'ready',
      checks: { database: true, redis: true },
    });
    assert.equal(ready.headers.get('cache-control'), 'no-store');
  });

  it('idp healthcheck exits 0 for a live server and 1 otherwise', async () => {
    const env = { ...idp.setup.env, IDP_PORT: String(idp.port) };
    const live = await runIdp(env, ['healthcheck']);
    assert.equal(live.code, 0, live.stderr);
    const dead = await runIdp({ ...env, IDP_PORT: String(await freePort()) }, ['healthcheck']);
    assert.equal(dead.code, 1);
    assert.match(dead.stderr, /^idp: connect ECONNREFUSED 127\.0\.0\.1:\d+\n$/);
  });
});

describe('signing key schedule', () => {
  let testDatabase: TestDatabase;
  let database: Database;
  const encryptor = new Encryptor([randomBytes(32)]);

  before(async () => {
    testDatabase = await createTestDatabase();
    database = await openDatabase({ databaseUrl: testDatabase.url, dataDir: '.' });
    await migrate(database);
    await ensureSigningKeys(database, encryptor);
  });

  after(async () => {
    await database?.close();
    await testDatabase?.drop();
  });

  const states = async () =>
    Object.fromEntries((await listSigningKeys(database)).map((key) => [key.kid, key.state]));

  it('a next key activates when due and a second rotate waits for it', async () => {
    const [next] = await rotateSigningKeys(database, encryptor, {
      activate: false,
      delaySeconds: 3600,
    });
    assert.equal(next?.state, 'next');
    await assert.rejects(
      rotateSigningKeys(database, encryptor, { activate: false, delaySeconds: 3600 }),
      /already waits to sign from .*run idp keys rotate --activate/,
    );
    assert.equal(await advanceSigningKeys(database, 3600), false, 'nothing is due yet');
    const loaded = await loadSigningKeys(database, encryptor);
    assert.ok(loaded.nextActivation, 'the next key has an activation time');
    assert.ok(loaded.nextActivation.getTime() > Date.now() + 3500_000);

    await database.query(
      "UPDATE signing_keys SET activate_at = now() - interval '1 second' WHERE state = 'next'",
    );
    assert.equal(await advanceSigningKeys(database, 3600), true);
    const after = await states();
    assert.equal(after[next!.kid], 'active');
    assert.equal(Object.values(after).filter((state) => state === 'retired').length, 2);
    assert.equal(Object.values(after).filter((state) => state === 'active').length, 2);
  });

  it('retired keys stay published for the window, then are deleted', async () => {
    const published = (await loadSigningKeys(database, encryptor)).keys.length;
    assert.equal(published, 4, 'two active and two retired keys are published');
    await database.query(
      "UPDATE signing_keys SET retired_at = now() - interval '2 hours' WHERE state = 'retired'",
    );
    assert.equal(await advanceSigningKeys(database, 3 * 3600), false, 'still inside the window');
    assert.equal(await advanceSigningKeys(database, 3600), true);
    assert.deepEqual(Object.values(await states()), ['active', 'active']);
  });
});

describe('idp keys reencrypt', () => {
  it('moves every stored secret to the newest key', async () => {
    const setup = await createTestSetup();
    try {
      const oldKey = setup.encryptionKey;
      const newKey = randomBytes(32);
      const database = await openDatabase({ databaseUrl: setup.testDatabase.url, dataDir: '.' });
      await migrate(database);
      await ensureSigningKeys(database, new Encryptor([oldKey]));
      await new ClientStore(database, new Encryptor([oldKey])).create({
        clientId: 'case-app',
        redirectUris: ['https://app.example.test/cb'],
        clientSecret: 'a'.repeat(40),
      });
      const both = `${newKey.toString('base64')},${oldKey.toString('base64')}`;
      const result = await runIdp(
        {
          ...setup.env,
          IDP_ENCRYPTION_KEY: both,
        },
        ['keys', 'reencrypt'],
      );
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /signing keys: 2 of 2 re-encrypted/);
      assert.match(result.stdout, /client secrets: 1 of 1 re-encrypted/);
      const again = await runIdp({ ...setup.env, IDP_ENCRYPTION_KEY: both }, ['keys', 'reencrypt']);
      assert.match(again.stdout, /signing keys: 0 of 2 re-encrypted/);

      const onlyNew = new Encryptor([newKey]);
      assert.equal((await loadSigningKeys(database, onlyNew)).keys.length, 2);
      const metadata = await new ClientStore(database, onlyNew).findMetadata('case-app');
      assert.equal(metadata?.['client_secret'], 'a'.repeat(40));
      await assert.rejects(
        loadSigningKeys(database, new Encryptor([oldKey])),
        /IDP_ENCRYPTION_KEY lacks/,
      );
      await database.close();
    } finally {
      await setup.cleanup();
    }
  });
});

describe('documentation', () => {
  it('the README configuration table lists every variable', () => {
    const readme = readFileSync(`${REPO_ROOT}/README.md`, 'utf8');
    const table = readme.slice(readme.indexOf('## Configuration'));
    for (const name of Object.keys(configSchema.shape)) {
      assert.ok(table.includes(`\`${name}\``), `${name} is missing from the README`);
    }
  });

  it('.env.example lists every variable', () => {
    const example = readFileSync(`${REPO_ROOT}/.env.example`, 'utf8');
    for (const name of Object.keys(configSchema.shape)) {
      assert.match(example, new RegExp(`^#? ?${name}(_FILE)?=`, 'm'), `${name} is missing`);
    }
  });
});
