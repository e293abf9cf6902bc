import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { AppError } from '../src/errors.ts';
import { createLogger } from '../src/logger.ts';
import { DependencyMonitor } from '../src/server/outages.ts';
import {
  addressGroup,
  DEFAULT_LOCKOUT_POLICY,
  type LockoutPolicy,
  lockoutPolicyOf,
  MemoryRateLimiter,
  type RateLimiter,
  RedisRateLimiter,
  watchRateLimiter,
} from '../src/security/rate-limit.ts';
import { connectTestRedis, type TestRedis } from './support/redis.ts';
import { startOwnRedis } from './support/redis-server.ts';

/** Short times so that delays and locks can be watched within a test. */
const POLICY: LockoutPolicy = {
  ...DEFAULT_LOCKOUT_POLICY,
  baseDelayMs: 20,
  maxDelayMs: 160,
  lockMs: 600,
  windowMs: 5000,
  ipLimit: 30,
  ipBlockMs: 700,
  bypassIntervalMs: 300,
};

let counter = 0;
const fresh = (name: string) => `${name}-${++counter}`;

async function fail(limiter: RateLimiter, username: string, ip: string) {
  const attempt = await limiter.begin(username, ip);
  const lockedByFailure = await limiter.failed(attempt);

  return { ...attempt, lockedByFailure };
}

function limiterSuite(name: string, make: () => RateLimiter) {
  describe(`${name} rate limiter`, () => {
    let limiter: RateLimiter;
    before(() => {
      limiter = make();
    });

    it('50 parallel failures count as 50 and lock once', async () => {
      const user = fresh('parallel');
      const attempts = await Promise.all(
        Array.from({ length: 50 }, (_, i) => fail(limiter, user, `198.51.100.${i + 1}`)),
      );
      const status = await limiter.status(user);
      assert.equal(status.failures, 50);
      assert.equal(status.locked, true);
      const locks = attempts.filter((a) => a.newlyLocked || a.lockedByFailure).length;
      assert.equal(locks, 1);
      // No more attempts were let through than the lock allows.
      const checked = attempts.filter((a) => a.decision === 'proceed').length;
      assert.ok(checked <= POLICY.lockAfter, `${checked} attempts were checked`);
    });

    it('delays grow from the fifth failure, then the tenth locks', async () => {
      const user = fresh('delays');
      const waits: number[] = [];
      for (let i = 0; i < POLICY.lockAfter; i++) {
        const attempt = await fail(limiter, user, '192.0.2.10');
        assert.equal(attempt.decision, 'proceed', `attempt ${i + 1}`);
        waits.push(attempt.waitMs);
        await sleep(attempt.waitMs);
        assert.equal(attempt.lockedByFailure, i + 1 === POLICY.lockAfter, `attempt ${i + 1}`);
      }
      assert.deepEqual(waits.slice(0, 5), [0, 0, 0, 0, 0]);
      const delayed = waits.slice(5);
      for (const [i, wait] of delayed.entries()) {
        const expected = Math.min(POLICY.baseDelayMs * 2 ** i, POLICY.maxDelayMs);
        assert.ok(wait >= expected - 5, `wait ${wait} vs ${expected}`);
        assert.ok(wait <= expected + 5, `wait ${wait} vs ${expected}`);
      }
      const after = await limiter.begin(user, '192.0.2.10');
      assert.equal(after.decision, 'locked');
    });

    it('a lock expires on time and the counters with it', async () => {
      const user = fresh('expiry');
      for (let i = 0; i < POLICY.lockAfter; i++) await fail(limiter, user, '192.0.2.20');
      const locked = await limiter.status(user);
      assert.equal(locked.locked, true);
      assert.ok(locked.lockRemainingMs > 0, `lock remaining ${locked.lockRemainingMs} ms`);
      assert.ok(
        locked.lockRemainingMs <= POLICY.lockMs,
        `lock remaining ${locked.lockRemainingMs} ms`,
      );
      await sleep(POLICY.lockMs / 2);
      assert.equal((await limiter.begin(user, '192.0.2.20')).decision, 'locked');
      await sleep(POLICY.lockMs / 2 + 50);
      const status = await limiter.status(user);
      assert.deepEqual(status, { failures: 0, locked: false, lockRemainingMs: 0 });
      const attempt = await limiter.begin(user, '192.0.2.20');
      assert.equal(attempt.decision, 'proceed');
      assert.equal(attempt.waitMs, 0);
    });

    it('unlock clears the lock and the counters', async () => {
      const user = fresh('unlock');
      for (let i = 0; i < POLICY.lockAfter; i++) await fail(limiter, user, '192.0.2.30');
      assert.equal((await limiter.status(user)).locked, true);
      assert.equal(await limiter.unlock(user), true);
      assert.deepEqual(await limiter.status(user), {
        failures: 0,
        locked: false,
        lockRemainingMs: 0,
      });
      assert.equal(await limiter.unlock(user), false);
    });

    it('a clean address gets one turn per interval on a locked account', async () => {
      const user = fresh('bypass');
      for (let i = 0; i < POLICY.lockAfter; i++) await fail(limiter, user, '192.0.2.40');
      assert.equal((await limiter.begin(user, '192.0.2.40')).decision, 'locked');
      const first = await limiter.begin(user, '192.0.2.41');
      assert.equal(first.decision, 'bypass');
      assert.equal(first.waitMs, 0);
      const second = await limiter.begin(user, '192.0.2.42');
      assert.equal(second.decision, 'bypass');
      assert.ok(second.waitMs > POLICY.bypassIntervalMs - 20, `waits ${second.waitMs}`);
      assert.equal((await limiter.begin(user, '192.0.2.43')).decision, 'locked');
      // The addresses that tried now have failures, so they are no longer clean.
      await limiter.failed(first);
      await sleep(POLICY.bypassIntervalMs + 20);
      assert.equal((await limiter.begin(user, '192.0.2.41')).decision, 'locked');
    });

    it('usernames are counted in canonical form', async () => {
      const user = fresh('Canonical');
      await fail(limiter, user, '192.0.2.50');
      await fail(limiter, `  ${user.toUpperCase()} `, '192.0.2.50');
      assert.equal((await limiter.status(user.toLowerCase())).failures, 2);
    });

    it('one address spraying many accounts is refused past its limit', async () => {
      const ip = '203.0.113.99';
      const decisions: string[] = [];
      for (let i = 0; i < POLICY.ipLimit + 3; i++) {
        decisions.push((await fail(limiter, fresh('spray'), ip)).decision);
      }
      assert.deepEqual(decisions.slice(0, POLICY.ipLimit), Array(POLICY.ipLimit).fill('proceed'));
      assert.deepEqual(decisions.slice(POLICY.ipLimit), ['ip_blocked', 'ip_blocked', 'ip_blocked']);
      // Other addresses are not affected, and the block ends by itself.
      assert.equal((await limiter.begin(fresh('spray'), '203.0.113.98')).decision, 'proceed');
      await sleep(POLICY.ipBlockMs + 50);
      assert.equal((await limiter.begin(fresh('spray'), ip)).decision, 'proceed');
    });

    it('IPv6 addresses count per /64 network', async () => {
      const decisions: string[] = [];
      for (let i = 0; i < POLICY.ipLimit + 2; i++) {
        const ip = `2001:db8:bad:1::${(i + 1).toString(16)}`;
        decisions.push((await fail(limiter, fresh('v6'), ip)).decision);
      }
      assert.deepEqual(decisions.slice(0, POLICY.ipLimit), Array(POLICY.ipLimit).fill('proceed'));
      assert.deepEqual(decisions.slice(POLICY.ipLimit), ['ip_blocked', 'ip_blocked']);
      // Another /64 is another network.
      assert.equal((await limiter.begin(fresh('v6'), '2001:db8:bad:2::1')).decision, 'proceed');
    });

    it('a success takes back its own count', async () => {
      const user = fresh('success');
      await fail(limiter, user, '192.0.2.60');
      const attempt = await limiter.begin(user, '192.0.2.60');
      assert.equal((await limiter.status(user)).failures, 2);
      await limiter.succeeded(attempt);
      assert.equal((await limiter.status(user)).failures, 1);
    });
  });
}

describe('rate limiter on Redis', () => {
  let testRedis: TestRedis;
  before(async () => {
    testRedis = await connectTestRedis();
  });
  after(async () => {
    await testRedis?.cleanup();
  });

  limiterSuite('Redis', () => new RedisRateLimiter(testRedis.redis, testRedis.prefix, POLICY));

  it('every key has a TTL no longer than its policy allows', async () => {
    const keys = await testRedis.keys();
    assert.ok(keys.length > 0);
    const longest = Math.max(POLICY.windowMs, POLICY.lockMs, POLICY.ipBlockMs);
    for (const key of keys) {
      const ttl = await testRedis.redis.pttl(key);
      assert.ok(ttl > 0, `${key} has TTL ${ttl}`);
      assert.ok(ttl <= longest, `${key} has TTL ${ttl}`);
      assert.ok(!key.includes('parallel-'), `${key} holds a username`);
    }
  });
});

limiterSuite('in-process', () => new MemoryRateLimiter(POLICY));

describe('rate limiter during a Redis outage', () => {
  it('gives the unavailable error and marks Redis down', async () => {
    const own = await startOwnRedis();
    const redis = new Redis(own.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => {});
    const monitor = new DependencyMonitor(createLogger('silent'));
    const limiter = watchRateLimiter(new RedisRateLimiter(redis, 'outage:', POLICY), monitor);
    try {
      assert.equal((await limiter.begin('alice', '192.0.2.1')).decision, 'proceed');
      await own.stop();
      await assert.rejects(
        limiter.begin('alice', '192.0.2.1'),
        (error: unknown) => error instanceof AppError && error.status === 503,
      );
      assert.equal(monitor.isUp('redis'), false);
    } finally {
      redis.disconnect();
      await own.destroy();
    }
  });
});

describe('lockout policy from the configuration', () => {
  it('sets the lock, the delays and the address limit', () => {
    const policy = lockoutPolicyOf({
      lockout: { threshold: 6, durationSeconds: 3600, addressLimit: 500 },
    });
    assert.deepEqual(
      [policy.lockAfter, policy.delayAfter, policy.lockMs, policy.ipLimit],
      [6, 3, 3_600_000, 500],
    );
    assert.equal(policy.windowMs, DEFAULT_LOCKOUT_POLICY.windowMs);
    const defaults = lockoutPolicyOf({
      lockout: { threshold: 10, durationSeconds: 900, addressLimit: 50 },
    });
    assert.deepEqual(defaults, DEFAULT_LOCKOUT_POLICY);
  });
});

describe('address groups of the failure counters', () => {
  it('groups IPv6 by /64 and keeps IPv4 whole', () => {
    const cases: [string, string][] = [
      ['192.0.2.7', '192.0.2.7'],
      ['::ffff:192.0.2.7', '192.0.2.7'],
      ['2001:db8:bad:1::100', '2001:db8:bad:1::/64'],
      ['2001:DB8:0bad:1:ffff:1:2:3', '2001:db8:bad:1::/64'],
      ['2001:db8::1', '2001:db8:0:0::/64'],
      ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ];
    for (const [ip, group] of cases) {
      assert.equal(addressGroup(ip), group, ip);
    }
  });
});
