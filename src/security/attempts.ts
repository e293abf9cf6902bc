import type { Redis } from 'ioredis';

/**
 * Counters that expire, shared by every node through Redis (or kept in process without Redis).
 * `increment` is atomic, so parallel requests each get their own count.
 */
export interface AttemptCounter {
  /** Adds one to the counter and returns the new count; a new counter expires after `ttlSeconds`. */
  increment(key: string, ttlSeconds: number): Promise<number>;
  reset(key: string): Promise<void>;
}

export function createRedisAttemptCounter(redis: Redis, prefix: string): AttemptCounter {
  const fullKey = (key: string) => `${prefix}attempts:${key}`;

  return {
    async increment(key, ttlSeconds) {
      const results = await redis
        .multi()
        .incr(fullKey(key))
        .pexpire(fullKey(key), Math.max(1, Math.round(ttlSeconds * 1000)), 'NX')
        .exec();
      const [error, count] = results?.[0] ?? [new Error('Redis EXEC returned null')];
      if (error) throw error;

      return Number(count);
    },
    async reset(key) {
      await redis.del(fullKey(key));
    },
  };
}

export function createMemoryAttemptCounter(now: () => number = Date.now): AttemptCounter {
  const counters = new Map<string, { count: number; expiresAt: number }>();

  return {
    async increment(key, ttlSeconds) {
      const at = now();
      for (const [name, entry] of counters) if (entry.expiresAt <= at) counters.delete(name);
      const entry = counters.get(key) ?? { count: 0, expiresAt: at + ttlSeconds * 1000 };
      entry.count += 1;
      counters.set(key, entry);

      return entry.count;
    },
    async reset(key) {
      counters.delete(key);
    },
  };
}
