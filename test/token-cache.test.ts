import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { AdapterPayload } from 'oidc-provider';
import { createTrackingConnection } from '../src/db/redis.ts';
import { withReadAhead } from '../src/oidc/adapters/read-ahead.ts';
import { createRedisAdapter, tokenCachePrefixes } from '../src/oidc/adapters/redis.ts';
import { TokenCache } from '../src/oidc/adapters/token-cache.ts';
import { captureLogs } from './support/idp.ts';
import { connectTestRedis, TEST_REDIS_URL, type TestRedis } from './support/redis.ts';
import { eventually } from './support/wait.ts';

const id = () => randomBytes(16).toString('base64url');
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;
const token = (fields: Partial<AdapterPayload> = {}): AdapterPayload => ({
  accountId: 'alice',
  clientId: 'client-1',
  exp: inAnHour(),
  ...fields,
});

/** Runs `read` as introspection does: in a request whose token reads may use the copies. */
const introspecting = <T>(read: () => Promise<T>) => withReadAhead(read, { cacheable: true });

/**
 * Starts a TCP relay to Redis that can stop passing bytes without closing, as a failed network
 * would.
 */
async function startRelay(target: URL) {
  const sockets = new Set<Socket>();
  // Bytes held back while stalled, in arrival order, with the socket each is meant for.
  const heldBack: Array<[Socket, Buffer]> = [];
  let stalled = false;
  const server: Server = createServer((inbound) => {
    const outbound = connect(Number(target.port || 6379), target.hostname);
    const relay = (from: Socket, to: Socket) =>
      from.on('data', (chunk: Buffer) => (stalled ? heldBack.push([to, chunk]) : to.write(chunk)));
    relay(inbound, outbound);
    relay(outbound, inbound);
    for (const socket of [inbound, outbound]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        inbound.destroy();
        outbound.destroy();
      });
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };

  return {
    url: `redis://127.0.0.1:${port}`,
    stall: () => (stalled = true),
    resume() {
      stalled = false;
      for (const [to, chunk] of heldBack.splice(0)) to.write(chunk);
    },
    close() {
      sockets.forEach((socket) => socket.destroy());
      server.close();
    },
  };
}

describe('token copies kept up to date by Redis', () => {
  let testRedis: TestRedis;
  // Writes made by "another node": a connection of the test's own.
  let other: Redis;
  // Caches and relays to close at the end.
  const opened: Array<{ close(): unknown }> = [];

  before(async () => {
    testRedis = await connectTestRedis();
    other = testRedis.redis;
  });

  after(async () => {
    for (const cache of opened) await cache.close();
    await testRedis?.cleanup();
  });

  /**
   * Opens a cache and an adapter under a prefix of their own, with the cache tracking. With
   * `relayed`, the cache's connection goes through a relay that the test can stall.
   */
  async function open(
    options: { connection?: Redis; relayed?: boolean; staleAfterMs?: number } = {},
  ) {
    const prefix = `${testRedis.prefix}${id()}:`;
    const { logger, logs } = captureLogs('info');
    const relay = options.relayed ? await startRelay(new URL(TEST_REDIS_URL)) : undefined;
    if (relay) opened.push(relay);
    const connection =
      options.connection ??
      createTrackingConnection(
        relay ? new Redis(relay.url, { lazyConnect: true, maxRetriesPerRequest: 1 }) : other,
      );
    const cache = new TokenCache({
      connection,
      prefixes: tokenCachePrefixes(prefix),
      logger,
      heartbeatMs: 100,
      staleAfterMs: options.staleAfterMs ?? 3000,
    });
    opened.push(cache);
    await cache.start();
    const Adapter = createRedisAdapter(other, prefix, cache);
    const key = (model: string, recordId: string) => `${prefix}oidc:${model}:${recordId}`;

    /**
     * Waits until Redis has reported every change made so far. Reports arrive in order, so it
     * makes one more change and waits for that one.
     */
    async function settle(): Promise<void> {
      const marker = key('Grant', `marker-${id()}`);
      const reported = new Promise<void>((resolve) => {
        const listener = (_channel: Buffer, keys: unknown) => {
          if (Array.isArray(keys) && keys.some((name) => String(name) === marker)) {
            connection.off('messageBuffer', listener);
            resolve();
          }
        };
        connection.on('messageBuffer', listener);
      });
      await other.set(marker, '{}', 'EX', 60);
      await reported;
    }

    return {
      settle,
      relay,
      cache,
      connection,
      logs,
      Adapter,
      tokens: new Adapter('AccessToken'),
      refreshTokens: new Adapter('RefreshToken'),
      sessions: new Adapter('Session'),
      grants: new Adapter('Grant'),
      key,
    };
  }

  it('serves a repeated read from the copy', async () => {
    const { cache, tokens, key, settle } = await open();
    assert.equal(cache.tracking, true);
    const tokenId = id();
    await tokens.upsert(tokenId, token({ scope: 'openid' }), 3600);
    await settle();

    assert.equal((await introspecting(() => tokens.find(tokenId)))?.scope, 'openid');
    const hits = cache.stats.hits;
    const served = await introspecting(() => tokens.find(tokenId));
    assert.equal(served?.scope, 'openid');
    assert.equal(cache.stats.hits, hits + 1, 'the second read was served from the copy');
    assert.ok(Object.isFrozen(served), 'the copy every request shares cannot be changed');

    await other.set(key('AccessToken', tokenId), JSON.stringify(token({ scope: 'changed' })));
    await eventually(
      'the change to be seen',
      async () => (await introspecting(() => tokens.find(tokenId)))?.scope === 'changed',
      2000,
    );

    await other.del(key('AccessToken', tokenId));
    await eventually(
      'the deletion to be seen',
      async () => (await introspecting(() => tokens.find(tokenId))) === undefined,
      2000,
    );
  });

  it('serves no copy outside introspection', async () => {
    const { cache, tokens, settle } = await open();
    const tokenId = id();
    await tokens.upsert(tokenId, token(), 3600);
    await settle();
    await introspecting(() => tokens.find(tokenId));
    const hits = cache.stats.hits;

    await withReadAhead(() => tokens.find(tokenId));
    await tokens.find(tokenId);
    assert.equal(cache.stats.hits, hits);
  });

  it('keeps a missing token as missing', async () => {
    const { cache, refreshTokens, key } = await open();
    const tokenId = id();
    assert.equal(await introspecting(() => refreshTokens.find(tokenId)), undefined);
    const hits = cache.stats.hits;
    assert.equal(await introspecting(() => refreshTokens.find(tokenId)), undefined);
    assert.equal(cache.stats.hits, hits + 1, 'the miss was kept');

    await other.set(key('RefreshToken', tokenId), JSON.stringify(token()));
    await eventually(
      'the new token to be found',
      async () => (await introspecting(() => refreshTokens.find(tokenId))) !== undefined,
      2000,
    );
  });

  it('keeps no copy of an overlong token', async () => {
    const { cache, tokens, refreshTokens } = await open();
    // A token of 40,000 characters, as a client may send, must not cost the node that much memory.
    const overlong = 'x'.repeat(40_000);
    assert.equal(await introspecting(() => tokens.find(overlong)), undefined);
    assert.equal(await introspecting(() => refreshTokens.find(overlong)), undefined);
    const { hits, misses } = cache.stats;
    assert.equal(await introspecting(() => tokens.find(overlong)), undefined);
    assert.equal(cache.stats.hits, hits, 'nothing was served from the copies');
    assert.equal(cache.stats.misses, misses, 'nothing was looked up in the copies');
  });

  it('keeps the grant of a token', async () => {
    const { cache, tokens, grants, key, settle } = await open();
    const [tokenId, grantId] = [id(), id()];
    await grants.upsert(grantId, { accountId: 'alice', clientId: 'client-1' }, 3600);
    await tokens.upsert(tokenId, token({ grantId }), 3600);
    await settle();
    const introspect = () =>
      introspecting(async () => {
        const found = await tokens.find(tokenId);
        return grants.find(found!.grantId!);
      });

    assert.equal((await introspect())?.clientId, 'client-1');
    const hits = cache.stats.hits;
    assert.equal((await introspect())?.clientId, 'client-1');
    assert.equal(cache.stats.hits, hits + 2, 'the token and its grant came from the copies');

    await other.set(
      key('Grant', grantId),
      JSON.stringify({ accountId: 'alice', clientId: 'client-2' }),
    );
    await eventually(
      'the grant change to be seen',
      async () => (await introspect())?.clientId === 'client-2',
      2000,
    );
  });

  it('keeps a session found by uid', async () => {
    const { cache, sessions, key, settle } = await open();
    const [sessionId, uid] = [id(), id()];
    await sessions.upsert(sessionId, { uid, accountId: 'alice', exp: inAnHour() }, 3600);
    await settle();
    const find = () => introspecting(() => sessions.findByUid(uid));
    assert.equal((await find())?.accountId, 'alice');
    const hits = cache.stats.hits;
    assert.equal((await find())?.accountId, 'alice');
    assert.equal(cache.stats.hits, hits + 2, 'the uid index and the session came from the copies');

    await other.del(key('Session', sessionId));
    await eventually(
      'the ended session to be seen',
      async () => (await find()) === undefined,
      2000,
    );
  });

  it('drops copies at once on local writes', async () => {
    // Reports from Redis are held back, so only the adapter's own dropping can show the change.
    const { cache, tokens, grants, Adapter, settle, relay } = await open({ relayed: true });
    assert.ok(relay);
    const [tokenId, revoked, grantId, ended, accountGrant] = [id(), id(), id(), id(), id()];
    await tokens.upsert(tokenId, token({ scope: 'openid' }), 3600);
    await grants.upsert(grantId, { accountId: 'alice', clientId: 'client-1' }, 3600);
    await tokens.upsert(revoked, token({ grantId }), 3600);
    await grants.upsert(accountGrant, { accountId: 'bob', clientId: 'client-1' }, 3600);
    await tokens.upsert(ended, token({ accountId: 'bob', grantId: accountGrant }), 3600);
    await settle();
    for (const cachedId of [tokenId, revoked, ended]) {
      await introspecting(() => tokens.find(cachedId));
    }
    const hits = cache.stats.hits;
    for (const cachedId of [tokenId, revoked, ended]) {
      await introspecting(() => tokens.find(cachedId));
    }
    assert.equal(cache.stats.hits, hits + 5, 'the three tokens and two grants are kept');

    relay.stall();
    await tokens.upsert(tokenId, token({ scope: 'openid email' }), 3600);
    assert.equal((await introspecting(() => tokens.find(tokenId)))?.scope, 'openid email');
    await tokens.destroy(tokenId);
    assert.equal(await introspecting(() => tokens.find(tokenId)), undefined);
    await tokens.revokeByGrantId(grantId);
    assert.equal(await introspecting(() => tokens.find(revoked)), undefined);
    await Adapter.revokeAccount('bob');
    assert.equal(await introspecting(() => tokens.find(ended)), undefined);
  });

  it('drops a read that a change overtook', async () => {
    const { cache, connection, key, settle } = await open();
    const tokenKey = key('AccessToken', id());
    await other.set(tokenKey, JSON.stringify(token({ scope: 'old' })));
    await settle();

    const reported = once(connection, 'messageBuffer');
    const raw = await cache.read(
      async () => {
        const value = await other.get(tokenKey);
        // The change lands after the read and is reported before the read returns.
        await other.set(tokenKey, JSON.stringify(token({ scope: 'new' })));
        await reported;
        return value;
      },
      (value) => [[tokenKey, value]],
    );
    assert.match(raw!, /"scope":"old"/, 'the read returns what it read');
    assert.equal(cache.peek(tokenKey), undefined, 'but does not keep it');
  });

  it('drops copies when the connection closes', async () => {
    const connection = createTrackingConnection(other);
    const name = `idp-test-cache-${id()}`;
    connection.options.connectionName = name;
    const { cache, tokens, key, settle } = await open({ connection });
    const tokenId = id();
    await tokens.upsert(tokenId, token({ scope: 'before' }), 3600);
    await settle();
    await introspecting(() => tokens.find(tokenId));

    const closed = once(connection, 'close');
    await other.client('KILL', 'ID', await clientIdNamed(name));
    await closed;
    // Redis could not report this change to the closed connection.
    await other.set(key('AccessToken', tokenId), JSON.stringify(token({ scope: 'while down' })));
    assert.equal((await introspecting(() => tokens.find(tokenId)))?.scope, 'while down');

    await eventually('tracking to resume', async () => cache.tracking, 5000);
    await settle();
    await introspecting(() => tokens.find(tokenId));
    const hits = cache.stats.hits;
    assert.equal((await introspecting(() => tokens.find(tokenId)))?.scope, 'while down');
    assert.equal(cache.stats.hits, hits + 1, 'copies are kept again');
    await other.set(key('AccessToken', tokenId), JSON.stringify(token({ scope: 'after' })));
    await eventually(
      'the change after reconnecting to be seen',
      async () => (await introspecting(() => tokens.find(tokenId)))?.scope === 'after',
      2000,
    );
  });

  async function clientIdNamed(name: string): Promise<string> {
    const list = (await other.client('LIST')) as string;
    const line = list.split('\n').find((entry) => entry.includes(` name=${name} `));
    assert.ok(line, `a Redis client named ${name}`);
    return /(?:^| )id=(\d+)/.exec(line)![1]!;
  }

  it('stops serving copies on a stalled connection', async () => {
    const { cache, tokens, key, settle, relay } = await open({
      relayed: true,
      staleAfterMs: 500,
    });
    assert.ok(relay);
    const tokenId = id();
    await tokens.upsert(tokenId, token({ scope: 'before' }), 3600);
    await settle();
    await introspecting(() => tokens.find(tokenId));
    const hits = cache.stats.hits;
    assert.equal((await introspecting(() => tokens.find(tokenId)))?.scope, 'before');
    assert.equal(cache.stats.hits, hits + 1, 'the copy is kept');

    relay.stall();
    await other.set(key('AccessToken', tokenId), JSON.stringify(token({ scope: 'stalled' })));
    await eventually(
      'the change to be read from Redis',
      async () => (await introspecting(() => tokens.find(tokenId)))?.scope === 'stalled',
      2000,
    );
    assert.equal(cache.tracking, false);

    relay.resume();
    await eventually('tracking to be current again', async () => cache.tracking, 2000);
  });

  it('stays off when Redis rejects tracking', async () => {
    const user = `idp-test-${id()}`;
    await other.call(
      'ACL',
      'SETUSER',
      user,
      'on',
      'nopass',
      '~*',
      '&*',
      '+@all',
      '-client',
      '+client|setname',
    );
    try {
      const url = new URL(TEST_REDIS_URL);
      url.username = user;
      url.password = 'unused';
      const rejecting = new Redis(url.href, { lazyConnect: true, maxRetriesPerRequest: 1 });
      const { cache, tokens, logs } = await open({
        connection: createTrackingConnection(rejecting),
      });
      assert.equal(cache.tracking, false);
      assert.ok(
        logs.some((line) => String(line['msg']).startsWith('Redis rejected CLIENT TRACKING')),
        'the refusal is logged',
      );
      const tokenId = id();
      await tokens.upsert(tokenId, token({ scope: 'openid' }), 3600);
      assert.equal((await introspecting(() => tokens.find(tokenId)))?.scope, 'openid');
      assert.equal(cache.stats.hits, 0);
    } finally {
      await other.call('ACL', 'DELUSER', user);
    }
  });

  it('keeps no expired record', async () => {
    const { cache, tokens, key, settle } = await open();
    const tokenId = id();
    const expired = Math.floor(Date.now() / 1000) - 1;
    await other.set(key('AccessToken', tokenId), JSON.stringify(token({ exp: expired })), 'EX', 60);
    await settle();
    await introspecting(() => tokens.find(tokenId));
    const hits = cache.stats.hits;
    await introspecting(() => tokens.find(tokenId));
    assert.equal(cache.stats.hits, hits);
  });
});
