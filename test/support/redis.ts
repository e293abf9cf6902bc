import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const TEST_REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

export interface TestRedis {
  redis: Redis;
  prefix: string;
  /** Lists every key of this run's prefix. */
  keys(): Promise<string[]>;
  /** Deletes this run's keys and disconnects. */
  cleanup(): Promise<void>;
}

/** Connects to Redis with a key prefix of this run's own. Fails loudly when Redis does not answer. */
export async function connectTestRedis(): Promise<TestRedis> {
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new Error(
      `Redis at ${TEST_REDIS_URL} is unreachable (${(error as Error).message}). Start it or set TEST_REDIS_URL.`,
      { cause: error },
    );
  }
  const prefix = `idp-test-${randomBytes(6).toString('hex')}:`;
  const keys = async () => {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');

    return found;
  };

  return {
    redis,
    prefix,
    keys,
    async cleanup() {
      const found = await keys();
      if (found.length > 0) await redis.del(...found);
      redis.disconnect();
    },
  };
}
