import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import type { AdapterPayload } from 'oidc-provider';
import { createMemoryAdapter } from '../src/oidc/adapters/memory.ts';
import { withReadAhead } from '../src/oidc/adapters/read-ahead.ts';
import { createRedisAdapter, type SessionStoreAdapter } from '../src/oidc/adapters/redis.ts';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const RUN_PREFIX = `idp-test-${randomBytes(6).toString('hex')}:`;

// What a contract test gets from one backend, for a store of its own.
interface Store {
  Adapter: SessionStoreAdapter;
  // Asserts that everything written so far expires within expiresIn seconds and not
  // before. `count` returns how many of the `total` written things can still be read.
  assertExpiresWithin(
    expiresIn: number,
    count: () => Promise<number>,
    total: number,
  ): Promise<void>;
  // Redis only: the store's keys with their PTTL in ms.
  keys?: () => Promise<Map<string, number>>;
  // Memory only: moves the store's clock forward.
  advance?: (ms: number) => void;
}

interface Backend {
  name: string;
  open(): Promise<Store>;
}

let redisClient: Promise<Redis> | undefined;

// Connects once. If Redis is unreachable, every Redis test fails with this message.
function connectRedis(): Promise<Redis> {
  redisClient ??= (async () => {
    const redis = new Redis(REDIS_URL, {
      lazyConnect: true,
      connectTimeout: 2000,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    // ioredis reports the socket error here and only "Connection is closed" to connect().
    let lastError: Error | undefined;
    redis.on('error', (err: Error) => {
      lastError = err;
    });
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      redis.disconnect();
      throw new Error(
        `Redis at ${REDIS_URL} is unreachable (${(lastError ?? (err as Error)).message}). ` +
          'Start it or set TEST_REDIS_URL.',
        { cause: err },
      );
    }
    return redis;
  })();
  return redisClient;
}

async function scanKeys(redis: Redis, match: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 500);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return found;
}

let storeCount = 0;

const redisBackend: Backend = {
  name: 'redis',
  async open() {
    const redis = await connectRedis();
    // A prefix per store keeps the key checks of one test apart from the others.
    const prefix = `${RUN_PREFIX}${++storeCount}:`;
    const keys = async () => {
      const ttls = new Map<string, number>();
      for (const key of await scanKeys(redis, `${prefix}*`)) ttls.set(key, await redis.pttl(key));
      return ttls;
    };
    return {
      Adapter: createRedisAdapter(redis, prefix),
      keys,
      async assertExpiresWithin(expiresIn, count, total) {
        assert.equal(await count(), total);
        const ttls = await keys();
        assert.ok(ttls.size > 0, 'no keys written');
        for (const [key, ttl] of ttls) {
          assert.ok(ttl > 0, `${key} has PTTL ${ttl}`);
          assert.ok(ttl <= expiresIn * 1000, `${key} has PTTL ${ttl}`);
        }
      },
    };
  },
};

const memoryBackend: Backend = {
  name: 'memory',
  async open() {
    let offset = 0;
    return {
      Adapter: createMemoryAdapter({ now: () => Date.now() + offset }),
      advance(ms) {
        offset += ms;
      },
      async assertExpiresWithin(expiresIn, count, total) {
        const start = offset;
        offset = start + expiresIn * 1000 - 50;
        assert.equal(await count(), total, 'gone before expiresIn');
        offset = start + expiresIn * 1000 + 1;
        assert.equal(await count(), 0, 'still there after expiresIn');
        offset = start;
      },
    };
  },
};

const id = () => randomBytes(12).toString('base64url');

function token(extra: Partial<AdapterPayload> = {}): AdapterPayload {
  const iat = Math.floor(Date.now() / 1000);
  return { iat, exp: iat + 60, clientId: 'client-1', accountId: 'alice', ...extra };
}

function isInvalidGrant(error: unknown): boolean {
  return (error as { error?: string }).error === 'invalid_grant';
}

async function present(...lookups: Promise<unknown>[]): Promise<number> {
  return (await Promise.all(lookups)).filter((found) => found !== undefined).length;
}

type Contract = Record<string, (store: Store) => Promise<void>>;

const contract: Contract = {
  async 'upsert then find returns the payload'({ Adapter }) {
    const tokens = new Adapter('AccessToken');
    const jti = id();
    const payload = token({ jti, scope: 'openid', amr: [], extra: {}, grantId: id() });
    await tokens.upsert(jti, payload, 60);
    assert.deepEqual(await tokens.find(jti), payload);

    const changed = { ...payload, scope: 'openid email' };
    await tokens.upsert(jti, changed, 60);
    assert.deepEqual(await tokens.find(jti), changed);
  },

  async 'find of unknown id returns undefined'({ Adapter }) {
    assert.equal(await new Adapter('AccessToken').find(id()), undefined);
    assert.equal(await new Adapter('Session').findByUid(id()), undefined);
    assert.equal(await new Adapter('DeviceCode').findByUserCode('NOPE-NOPE'), undefined);
  },

  async 'every key has TTL within expiresIn'(store) {
    const { Adapter } = store;
    const sessions = new Adapter('Session');
    const codes = new Adapter('DeviceCode');
    const tokens = new Adapter('AccessToken');
    const interactions = new Adapter('Interaction');
    const [sid, uid, code, at, iid, grantId] = [id(), id(), id(), id(), id(), id()];
    await sessions.upsert(sid, { uid, accountId: 'alice' }, 30);
    await codes.upsert(code, token({ userCode: 'ABCD-EFGH', grantId }), 30);
    await tokens.upsert(at, token({ grantId }), 30);
    await interactions.upsert(iid, { uid: iid, returnTo: '/auth' }, 30);

    await store.assertExpiresWithin(
      30,
      () =>
        present(
          sessions.find(sid),
          sessions.findByUid(uid),
          codes.find(code),
          codes.findByUserCode('ABCD-EFGH'),
          tokens.find(at),
          interactions.find(iid),
        ),
      6,
    );
    if (store.keys) {
      // Session and DeviceCode with their indexes, AccessToken, Interaction, the grant set,
      // the account set
      assert.equal((await store.keys()).size, 8);
    }
  },

  async 'record with expiresIn 1 expires'({ Adapter }) {
    const sessions = new Adapter('Session');
    const codes = new Adapter('DeviceCode');
    const [sid, uid, code] = [id(), id(), id()];
    await sessions.upsert(sid, { uid }, 1);
    await codes.upsert(code, token({ userCode: 'WXYZ-WXYZ', grantId: id() }), 1);
    assert.equal(await present(sessions.find(sid), codes.find(code)), 2);
    await sleep(1100);
    assert.equal(
      await present(
        sessions.find(sid),
        sessions.findByUid(uid),
        codes.find(code),
        codes.findByUserCode('WXYZ-WXYZ'),
      ),
      0,
    );
  },

  async 'findByUid finds the session'({ Adapter }) {
    const sessions = new Adapter('Session');
    const [sid, uid] = [id(), id()];
    const payload = { uid, accountId: 'alice', loginTs: 1700000000 };
    await sessions.upsert(sid, payload, 60);
    assert.deepEqual(await sessions.findByUid(uid), payload);
  },

  async 'findByUserCode finds the device code'({ Adapter }) {
    const codes = new Adapter('DeviceCode');
    const code = id();
    const payload = token({ userCode: 'QRST-UVWX', grantId: id(), deviceInfo: { ua: 'x' } });
    await codes.upsert(code, payload, 60);
    assert.deepEqual(await codes.findByUserCode('QRST-UVWX'), payload);
  },

  async 'destroy removes record and indexes'(store) {
    const sessions = new store.Adapter('Session');
    const codes = new store.Adapter('DeviceCode');
    const [sid, uid, code, grantId] = [id(), id(), id(), id()];
    await sessions.upsert(sid, { uid }, 60);
    await codes.upsert(code, token({ userCode: 'DEST-ROYS', grantId }), 60);

    await sessions.destroy(sid);
    await codes.destroy(code);
    assert.equal(
      await present(
        sessions.find(sid),
        sessions.findByUid(uid),
        codes.find(code),
        codes.findByUserCode('DEST-ROYS'),
      ),
      0,
    );
    if (store.keys) assert.deepEqual([...(await store.keys()).keys()], []);
    // Destroying twice, or something never stored, is not an error.
    await sessions.destroy(sid);
    await codes.destroy(id());
  },

  async 'revokeByGrantId removes only that grant'(store) {
    const grantA = id();
    const grantB = id();
    const models = ['AccessToken', 'RefreshToken', 'AuthorizationCode', 'DeviceCode'];
    const issued: { model: string; jti: string; grantId: string }[] = [];
    for (const model of models) {
      for (const grantId of [grantA, grantB]) {
        const jti = id();
        const userCode = model === 'DeviceCode' ? `${grantId.slice(0, 4)}-CODE` : undefined;
        await new store.Adapter(model).upsert(jti, token({ jti, grantId, userCode }), 60);
        issued.push({ model, jti, grantId });
      }
    }

    await new store.Adapter('RefreshToken').revokeByGrantId(grantA);

    for (const { model, jti, grantId } of issued) {
      const found = await new store.Adapter(model).find(jti);
      if (grantId === grantA) assert.equal(found, undefined, `${model} of grant A survived`);
      else assert.equal(found?.grantId, grantB, `${model} of grant B was removed`);
    }
    const devices = new store.Adapter('DeviceCode');
    assert.equal(await devices.findByUserCode(`${grantA.slice(0, 4)}-CODE`), undefined);
    assert.ok(await devices.findByUserCode(`${grantB.slice(0, 4)}-CODE`));

    if (store.keys) {
      const keys = [...(await store.keys()).keys()];
      assert.ok(!keys.some((key) => key.includes(grantA)), 'grant A index left behind');
      assert.ok(
        keys.some((key) => key.endsWith(`grant:${grantB}`)),
        'grant B index removed',
      );
    }
  },

  async 'grant index outlives longest member'(store) {
    const tokens = new store.Adapter('AccessToken');
    const refresh = new store.Adapter('RefreshToken');
    const [short, long, grantId] = [id(), id(), id()];
    await refresh.upsert(long, token({ grantId }), 100);
    await tokens.upsert(short, token({ grantId }), 10);

    if (store.keys) {
      const ttls = await store.keys();
      const grantTtl = [...ttls].find(([key]) => key.endsWith(`grant:${grantId}`))?.[1];
      assert.ok(grantTtl !== undefined, 'grant index missing');
      assert.ok(grantTtl > 99_000, `grant index PTTL ${grantTtl}`);
    }
    if (store.advance) {
      store.advance(50_000);
      assert.equal(await tokens.find(short), undefined);
      await tokens.revokeByGrantId(grantId);
      assert.equal(await refresh.find(long), undefined, 'grant index expired with the short token');
    }
  },

  async 'revokeByAccountId ends sessions, grants, tokens'(store) {
    const { Adapter } = store;
    const sessions = new Adapter('Session');
    const grants = new Adapter('Grant');
    const refresh = new Adapter('RefreshToken');
    const [alice, bob] = [id(), id()];
    const ids: Record<string, string> = {};
    for (const [name, accountId] of [
      ['aliceA', alice],
      ['aliceB', alice],
      ['bob', bob],
    ] as const) {
      const [sid, grantId, rt] = [id(), id(), id()];
      await grants.upsert(grantId, { accountId, clientId: 'client-1' }, 60);
      await sessions.upsert(
        sid,
        { uid: id(), accountId, authorizations: { 'client-1': { sid: id(), grantId } } },
        60,
      );
      await refresh.upsert(rt, token({ accountId, grantId }), 60);
      Object.assign(ids, {
        [`${name}Session`]: sid,
        [`${name}Grant`]: grantId,
        [`${name}Token`]: rt,
      });
    }

    const ended = await Adapter.revokeByAccountId(alice, { keepSessionId: ids['aliceASession'] });
    assert.equal(ended, 2, 'the other session and its grant');
    assert.ok(await sessions.find(ids['aliceASession']!), 'kept session');
    assert.ok(await grants.find(ids['aliceAGrant']!), 'grant of the kept session');
    assert.ok(await refresh.find(ids['aliceAToken']!), 'token of the kept session');
    assert.equal(await sessions.find(ids['aliceBSession']!), undefined);
    assert.equal(await grants.find(ids['aliceBGrant']!), undefined);
    assert.equal(await refresh.find(ids['aliceBToken']!), undefined);
    assert.ok(await sessions.find(ids['bobSession']!), 'another account untouched');
    assert.ok(await refresh.find(ids['bobToken']!), 'another account untouched');

    const { ended: last, sessions: gone } = await Adapter.revokeAccount(alice);
    assert.equal(last, 2);
    assert.deepEqual(
      gone.map((payload) => [payload.accountId, Object.keys(payload.authorizations ?? {})]),
      [[alice, ['client-1']]],
      'revokeAccount returns the deleted session',
    );
    assert.equal(await sessions.find(ids['aliceASession']!), undefined);
    assert.equal(await refresh.find(ids['aliceAToken']!), undefined);
    if (store.keys) {
      const keys = [...(await store.keys()).keys()];
      assert.ok(!keys.some((key) => key.includes(alice)), 'account index left behind');
      assert.ok(!keys.some((key) => key.includes(ids['aliceBGrant']!)), 'grant index left');
    }
  },

  async 'revokeByAccountId skips re-used sessions'({ Adapter }) {
    const sessions = new Adapter('Session');
    const [sid, alice, bob] = [id(), id(), id()];
    await sessions.upsert(sid, { uid: id(), accountId: alice }, 60);
    // The same browser session later signed in as another account.
    await sessions.upsert(sid, { uid: id(), accountId: bob }, 60);
    assert.equal(await Adapter.revokeByAccountId(alice), 0);
    assert.equal((await sessions.find(sid))?.accountId, bob);
  },

  async 'destroy drops the account index entry'(store) {
    const sessions = new store.Adapter('Session');
    const [sid, alice] = [id(), id()];
    await sessions.upsert(sid, { uid: id(), accountId: alice }, 60);
    await sessions.destroy(sid);
    if (store.keys) assert.deepEqual([...(await store.keys()).keys()], []);
    assert.equal(await store.Adapter.revokeByAccountId(alice), 0);
  },

  async 'consume sets consumed, keeps TTL'(store) {
    const codes = new store.Adapter('AuthorizationCode');
    const code = id();
    const payload = token({ grantId: id(), scope: 'openid', amr: [], claims: {} });
    await codes.upsert(code, payload, 30);
    const before = Math.floor(Date.now() / 1000);
    await codes.consume(code);
    const after = Math.floor(Date.now() / 1000);

    const found = await codes.find(code);
    assert.ok(found);
    const { consumed, ...rest } = found;
    assert.ok(Number.isInteger(consumed), `consumed is ${consumed}`);
    assert.ok(consumed >= before);
    assert.ok(consumed <= after);
    assert.deepEqual(rest, payload);
    await store.assertExpiresWithin(30, () => present(codes.find(code)), 1);
  },

  async 'consume of missing record is no-op'(store) {
    const requests = new store.Adapter('PushedAuthorizationRequest');
    const requestId = id();
    await requests.consume(requestId);
    assert.equal(await requests.find(requestId), undefined);
    if (store.keys) assert.equal((await store.keys()).size, 0);
  },

  async 'consume of missing code rejects'(store) {
    const codes = new store.Adapter('AuthorizationCode');
    await assert.rejects(codes.consume(id()), isInvalidGrant);
  },

  async '20 concurrent consumes leave valid record'(store) {
    const requests = new store.Adapter('PushedAuthorizationRequest');
    const requestId = id();
    const payload = token({ consumed: undefined, rotations: 2 });
    await requests.upsert(requestId, payload, 30);
    await Promise.all(Array.from({ length: 20 }, () => requests.consume(requestId)));

    const found = await requests.find(requestId);
    assert.ok(found);
    assert.ok(Number.isInteger(found.consumed));
    assert.equal(found.rotations, 2);
    await store.assertExpiresWithin(30, () => present(requests.find(requestId)), 1);
  },

  async 'second consume overwrites consumed'(store) {
    const requests = new store.Adapter('PushedAuthorizationRequest');
    const requestId = id();
    await requests.upsert(requestId, token({ consumed: 1 }), 30);
    await requests.consume(requestId);
    await requests.consume(requestId);
    const found = await requests.find(requestId);
    assert.ok(found);
    assert.ok(found.consumed > 1, `consumed is ${found.consumed}`);
  },

  async 'second consume of code revokes grant'(store) {
    const { Adapter } = store;
    const [codes, refreshTokens, accessTokens, grants] = [
      new Adapter('AuthorizationCode'),
      new Adapter('RefreshToken'),
      new Adapter('AccessToken'),
      new Adapter('Grant'),
    ];
    const [code, refreshToken, accessToken, grantId] = [id(), id(), id(), id()];
    await grants.upsert(grantId, { accountId: 'alice', clientId: 'client-1' }, 60);
    await codes.upsert(code, token({ grantId }), 60);
    await codes.consume(code);
    await refreshTokens.upsert(refreshToken, token({ grantId }), 60);
    await accessTokens.upsert(accessToken, token({ grantId }), 60);

    await assert.rejects(codes.consume(code), isInvalidGrant);

    assert.equal(await codes.find(code), undefined);
    assert.equal(await refreshTokens.find(refreshToken), undefined);
    assert.equal(await accessTokens.find(accessToken), undefined);
    assert.equal(await grants.find(grantId), undefined);
    if (store.keys) assert.equal((await store.keys()).size, 0);
  },

  async 'concurrent consumes of refresh token: one succeeds'(store) {
    const refreshTokens = new store.Adapter('RefreshToken');
    const refreshToken = id();
    await refreshTokens.upsert(refreshToken, token({ grantId: id() }), 30);

    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => refreshTokens.consume(refreshToken)),
    );

    assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1);
    for (const result of results) {
      if (result.status === 'rejected') assert.ok(isInvalidGrant(result.reason));
    }
    assert.equal(await refreshTokens.find(refreshToken), undefined);
  },

  async "finds a token's grant in one request"({ Adapter }) {
    const [tokens, grants] = [new Adapter('AccessToken'), new Adapter('Grant')];
    const [tokenId, grantId] = [id(), id()];
    await grants.upsert(grantId, { accountId: 'alice', clientId: 'client-1' }, 60);
    await tokens.upsert(tokenId, token({ grantId }), 60);

    await withReadAhead(async () => {
      assert.equal((await tokens.find(tokenId))?.grantId, grantId);
      assert.equal((await grants.find(grantId))?.accountId, 'alice');
      assert.equal((await grants.find(grantId))?.accountId, 'alice', 'found again');
    });
  },

  async 'rereads a changed or revoked grant'({ Adapter }) {
    const [tokens, grants] = [new Adapter('AccessToken'), new Adapter('Grant')];
    const [tokenId, grantId] = [id(), id()];
    await grants.upsert(grantId, { accountId: 'alice', clientId: 'client-1' }, 60);
    await tokens.upsert(tokenId, token({ grantId }), 60);

    await withReadAhead(async () => {
      await tokens.find(tokenId);
      await grants.upsert(grantId, { accountId: 'alice', clientId: 'client-2' }, 60);
      assert.equal((await grants.find(grantId))?.clientId, 'client-2');
    });
    await withReadAhead(async () => {
      await tokens.find(tokenId);
      await grants.destroy(grantId);
      assert.equal(await grants.find(grantId), undefined);
    });
  },

  async 'Client model is rejected'({ Adapter }) {
    assert.throws(() => new Adapter('Client'), /Client/);
  },
};

for (const backend of [redisBackend, memoryBackend]) {
  describe(`${backend.name} adapter`, () => {
    for (const [name, test] of Object.entries(contract)) {
      it(name, async () => test(await backend.open()));
    }
  });
}

describe('redis adapter read-ahead', () => {
  const open = async () => {
    const redis = await connectRedis();
    const prefix = `${RUN_PREFIX}${++storeCount}:`;
    const Adapter = createRedisAdapter(redis, prefix);

    return {
      redis,
      tokens: new Adapter('AccessToken'),
      grants: new Adapter('Grant'),
      grantKey: (grantId: string) => `${prefix}oidc:Grant:${grantId}`,
    };
  };

  it('reads token and grant together', async () => {
    const { redis, tokens, grants, grantKey } = await open();
    const [tokenId, grantId] = [id(), id()];
    await grants.upsert(grantId, { accountId: 'alice', clientId: 'client-1' }, 60);
    await tokens.upsert(tokenId, token({ grantId }), 60);

    await withReadAhead(async () => {
      await tokens.find(tokenId);
      // Deleted behind the adapter's back: the lookup right after the token still returns the
      // grant as it was when the token was read, and the one after that reads Redis again.
      await redis.del(grantKey(grantId));
      assert.equal((await grants.find(grantId))?.accountId, 'alice');
      assert.equal(await grants.find(grantId), undefined);
    });
    assert.equal(await grants.find(grantId), undefined, 'outside a request nothing is kept');
  });

  it('does not read ahead outside a request', async () => {
    const { redis, tokens, grants, grantKey } = await open();
    const [tokenId, grantId] = [id(), id()];
    await grants.upsert(grantId, { accountId: 'alice', clientId: 'client-1' }, 60);
    await tokens.upsert(tokenId, token({ grantId }), 60);
    await tokens.find(tokenId);
    await redis.del(grantKey(grantId));

    await withReadAhead(async () => {
      assert.equal(await grants.find(grantId), undefined);
    });
  });

  it('ignores a nested grantId', async () => {
    const { redis, tokens, grants, grantKey } = await open();
    const [tokenId, grantId, decoy] = [id(), id(), id()];
    await grants.upsert(decoy, { accountId: 'mallory', clientId: 'client-1' }, 60);
    await grants.upsert(grantId, { accountId: 'alice', clientId: 'client-1' }, 60);
    // The nested member comes first in the JSON text, where the script looks.
    await tokens.upsert(tokenId, token({ extra: { grantId: decoy }, grantId }), 60);

    await withReadAhead(async () => {
      assert.equal((await tokens.find(tokenId))?.grantId, grantId);
      await redis.del(grantKey(decoy));
      assert.equal(await grants.find(decoy), undefined, 'the decoy was not kept');
      assert.equal((await grants.find(grantId))?.accountId, 'alice');
    });
  });
});

after(async () => {
  const redis = await redisClient?.catch(() => undefined);
  if (!redis) return;
  const keys = await scanKeys(redis, `${RUN_PREFIX}*`);
  if (keys.length > 0) await redis.unlink(...keys);
  await redis.quit();
});
