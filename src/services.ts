import { Redis } from 'ioredis';
import type { Adapter } from 'oidc-provider';
import { AccountStore } from './accounts/store.ts';
import type { Config } from './config.ts';
import { type Database, openDatabase, openEmbeddedForCommand } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import type { Logger } from './logger.ts';
import { createMemoryAdapter } from './oidc/adapters/memory.ts';
import { createRedisAdapter } from './oidc/adapters/redis.ts';
import { ClientAdapter } from './oidc/client-adapter.ts';
import { ClientStore } from './oidc/clients.ts';
import { loadOrCreateEmbeddedSecrets } from './security/embedded-secrets.ts';
import { Encryptor } from './security/encryption.ts';

/** The connections and stores one idp process uses, opened from the configuration. */
export interface Services {
  config: Config;
  database: Database;
  redis?: Redis;
  encryptor: Encryptor;
  cookieKeys: string[];
  accounts: AccountStore;
  clients: ClientStore;
  close(): Promise<void>;
}

/** Returns the cookie and encryption keys: configured ones, or in embedded mode generated ones. */
function resolveSecrets(config: Config): { cookieKeys: string[]; encryptionKeys: Buffer[] } {
  if (config.cookieKeys && config.encryptionKeys) {
    return { cookieKeys: config.cookieKeys, encryptionKeys: config.encryptionKeys };
  }
  const generated = loadOrCreateEmbeddedSecrets(config.dataDir);

  return {
    cookieKeys: config.cookieKeys ?? generated.cookieKeys,
    encryptionKeys: config.encryptionKeys ?? [generated.encryptionKey],
  };
}

/**
 * Opens the database (applying pending migrations when `migrateOnOpen` is set) and, when the
 * caller needs sessions, Redis.
 */
export async function openServices(
  config: Config,
  logger: Logger,
  options: { migrateOnOpen: boolean; redis: boolean; role: 'server' | 'command' },
): Promise<Services> {
  const { cookieKeys, encryptionKeys } = resolveSecrets(config);
  let database: Database;
  try {
    database =
      options.role === 'command' && !config.databaseUrl
        ? await openEmbeddedForCommand(config.dataDir)
        : await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  } catch (error) {
    throw new Error(`cannot connect to the database: ${(error as Error).message}`, {
      cause: error,
    });
  }
  database.onIdleError = (error) =>
    logger.warn({ err: error }, 'an idle database connection failed; it will be replaced');
  if (options.migrateOnOpen) {
    const applied = await migrate(database);
    if (applied.length > 0) logger.info({ migrations: applied }, 'database migrations applied');
  }

  let redis: Redis | undefined;
  if (options.redis && config.redisUrl) {
    redis = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
    redis.on('error', (error) => logger.warn({ err: error }, 'Redis connection error'));
    try {
      await redis.connect();
    } catch (error) {
      await database.close();
      redis.disconnect();
      throw new Error(`cannot connect to Redis: ${(error as Error).message}`, { cause: error });
    }
  }

  const encryptor = new Encryptor(encryptionKeys);

  return {
    config,
    database,
    redis,
    encryptor,
    cookieKeys,
    accounts: new AccountStore(database),
    clients: new ClientStore(database, encryptor),
    async close() {
      redis?.disconnect();
      await database.close();
    },
  };
}

/** Key prefix of every Redis key idp writes. */
export const REDIS_PREFIX = 'idp:';

/** Returns oidc-provider's adapter factory: clients from Postgres, the rest from Redis or memory. */
export function createAdapterFactory(
  services: Services,
  logger: Logger,
  redisPrefix = REDIS_PREFIX,
): (model: string) => Adapter {
  const clientAdapter = new ClientAdapter(services.clients);
  let sessionAdapter: (model: string) => Adapter;
  if (services.redis) {
    const RedisAdapter = createRedisAdapter(services.redis, redisPrefix);
    sessionAdapter = (model) => new RedisAdapter(model);
  } else {
    logger.warn(
      'REDIS_URL is not set: sessions and tokens are kept in this process, so this node must be the only one and a restart signs everyone out',
    );
    const MemoryAdapter = createMemoryAdapter();
    sessionAdapter = (model) => new MemoryAdapter(model);
  }

  return (model) => (model === 'Client' ? clientAdapter : sessionAdapter(model));
}
