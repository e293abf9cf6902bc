import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import * as client from 'openid-client';
import { fetch } from 'undici';
import { TestBrowser } from './support/browser.ts';
import { createTestClient, startTestIdp, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import { runIdp } from './support/cli.ts';
import { type OwnRedis, startOwnRedis } from './support/redis-server.ts';
import { discoverRp, signInAndExchange, startAuthorization } from './support/rp.ts';
import { eventually } from './support/wait.ts';

const run = promisify(execFile);

/** Lists the keys of one Redis server. */
async function keysOn(port: number): Promise<string[]> {
  const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  await redis.connect();
  try {
    return await redis.keys('*');
  } finally {
    redis.disconnect();
  }
}

/** Returns the idp_token_cache_tracking gauge of `idp`: 1 while its token copies are in use. */
async function tokenCacheTracking(idp: TestIdp): Promise<number | undefined> {
  const gauge = idp.server.metrics.registry.getSingleMetric('idp_token_cache_tracking');
  assert.ok(gauge, 'the gauge is registered');

  return (await gauge.get()).values[0]?.value;
}

/** Signs in, refreshes and logs out: every Redis script and transaction of the adapter runs. */
async function exerciseSessions(idp: TestIdp): Promise<void> {
  await idp.accounts.create({ username: 'alice', password: TEST_PASSWORD });
  const app = await createTestClient(idp);
  const rp = await discoverRp(idp, app.clientId, app.clientSecret);
  const browser = new TestBrowser(idp.dispatcher);
  const { tokens } = await signInAndExchange(
    idp,
    rp,
    browser,
    app.redirectUri,
    'alice',
    TEST_PASSWORD,
  );
  const silent = await startAuthorization(rp, app.redirectUri, { prompt: 'none' });
  const answer = await browser.follow(silent.url.href, {}, app.redirectUri);
  assert.ok(new URL(answer.location!).searchParams.get('code'), 'the session is found by uid');
  const refreshed = await client.refreshTokenGrant(rp, tokens.refresh_token!);
  // Revoking runs the script that deletes every token of the grant.
  await client.tokenRevocation(rp, refreshed.refresh_token!);
  await assert.rejects(client.refreshTokenGrant(rp, refreshed.refresh_token!));
  const introspected = await client.tokenIntrospection(rp, refreshed.access_token);
  assert.equal(introspected.active, false);
}

describe('REDIS_URL with Sentinel', () => {
  let primary: OwnRedis;
  let sentinel: OwnRedis;
  let idp: TestIdp;

  before(async () => {
    primary = await startOwnRedis();
    sentinel = await startOwnRedis(
      ['--sentinel'],
      (_dir, port) =>
        `port ${port}\nsentinel monitor mymaster 127.0.0.1 ${primary.port} 1\n` +
        'sentinel down-after-milliseconds mymaster 5000\n',
    );
    idp = await startTestIdp({
      env: { REDIS_URL: `redis+sentinel://127.0.0.1:${sentinel.port}/mymaster` },
    });
  });

  after(async () => {
    await idp?.close();
    await sentinel?.destroy();
    await primary?.destroy();
  });

  it('finds the primary through the sentinel and keeps sessions there', async () => {
    await exerciseSessions(idp);
    const keys = await keysOn(primary.port);
    assert.ok(keys.some((key) => key.startsWith(`${idp.testRedis.prefix}oidc:Session:`)));
    assert.equal(await tokenCacheTracking(idp), 1, 'the token copies track the primary');
  });
});

describe('REDIS_URL with Cluster', () => {
  const nodes: OwnRedis[] = [];
  let idp: TestIdp;
  let prefix: string;

  before(async () => {
    for (let index = 0; index < 3; index++) {
      nodes.push(
        await startOwnRedis(['--cluster-enabled', 'yes', '--cluster-node-timeout', '2000']),
      );
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...nodes.map((node) => `127.0.0.1:${node.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    await eventually('the cluster to be ready', async () => {
      const states = await Promise.all(
        nodes.map(async (node) => {
          const { stdout } = await run('redis-cli', ['-p', String(node.port), 'cluster', 'info']);

          return stdout.includes('cluster_state:ok');
        }),
      );

      return states.every(Boolean);
    });
    const list = nodes.map((node) => `127.0.0.1:${node.port}`).join(',');
    idp = await startTestIdp({ env: { REDIS_URL: `redis+cluster://${list}` } });
    prefix = `{${idp.testRedis.prefix.replace(/:$/, '')}}:`;
  });

  after(async () => {
    await idp?.close();
    for (const node of nodes) await node.destroy();
  });

  it('puts every key in one hash slot, so the scripts work', async () => {
    await exerciseSessions(idp);
    const perNode = await Promise.all(nodes.map((node) => keysOn(node.port)));
    const ours = perNode.map((keys) => keys.filter((key) => key.startsWith(prefix)));
    assert.equal(ours.filter((keys) => keys.length > 0).length, 1, 'all keys on one primary');
    assert.ok(ours.flat().some((key) => key.startsWith(`${prefix}oidc:Session:`)));
    assert.equal(perNode.flat().length, ours.flat().length, 'no key without the hash tag');
    assert.equal(await tokenCacheTracking(idp), 0, 'the token copies are off in Cluster mode');
  });

  it('a key rotation notice reaches the node through the cluster', async () => {
    const env = { ...idp.setup.env, REDIS_URL: idp.config.redisUrl! };
    const rotated = await runIdp(env, ['keys', 'rotate']);
    assert.equal(rotated.code, 0, rotated.stderr);
    assert.match(rotated.stdout, /running nodes were told to reload their keys/);
    const kid = /RS256 key (\S+) is published/.exec(rotated.stdout)?.[1];
    await eventually(
      'the node to publish the new key',
      async () => {
        const response = await fetch(`${idp.url}/jwks`, { dispatcher: idp.dispatcher });
        const { keys } = (await response.json()) as { keys: { kid: string }[] };

        return keys.some((key) => key.kid === kid);
      },
      5000,
    );
  });
});
