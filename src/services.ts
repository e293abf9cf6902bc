import type { Redis } from 'ioredis';
import type { Adapter } from 'oidc-provider';
import { AccountStore } from './accounts/store.ts';
import type { Config } from './config.ts';
import { type Database, openDatabase, openEmbeddedForCommand } from './db/database.ts';
import { migrate } from './db/migrate.ts';
import {
  createRedisClient,
  selectedDatabase,
  effectiveRedisPrefix,
  parseRedisUrl,
  type RedisClient,
} from './db/redis.ts';
import type { AccountPageDeps } from './accounts/page.ts';
import type { InteractionDeps } from './interactions/context.ts';
import type { Logger } from './logger.ts';
import { CodeAttempts } from './mfa/attempts.ts';
import { type PolicyInput, SecondFactorPolicy } from './mfa/policy.ts';
import { ShortLivedStore } from './mfa/state.ts';
import { MfaStore } from './mfa/store.ts';
import { createMemoryAdapter } from './oidc/adapters/memory.ts';
import { createRedisAdapter, type SessionStoreAdapter } from './oidc/adapters/redis.ts';
import type { TokenCache } from './oidc/adapters/token-cache.ts';
import { ClientAdapter } from './oidc/client-adapter.ts';
import { ClientStore } from './oidc/clients.ts';
import { AuditLog } from './security/audit.ts';
import {
  createRateLimiter,
  DEFAULT_LOCKOUT_POLICY,
  type LockoutPolicy,
  watchRateLimiter,
} from './security/rate-limit.ts';
import { loadOrCreateEmbeddedSecrets } from './security/embedded-secrets.ts';
import {
  type AttemptCounter,
  createMemoryAttemptCounter,
  createRedisAttemptCounter,
} from './security/attempts.ts';
import { Encryptor } from './security/encryption.ts';
import {
  DependencyMonitor,
  describeError,
  isDatabaseOutage,
  isRedisOutage,
  isUnavailableError,
  temporarilyUnavailable,
  watchDatabase,
} from './server/outages.ts';
import { SettingsStore } from './settings.ts';

/** The connections and stores one idp process uses, opened from the configuration. */
export interface Services {
  config: Config;
  /** The database; in Postgres mode, outages become 503 errors and are logged once. */
  database: Database;
  /** The database as opened, for what needs the driver itself (sharing PGlite, pool counts). */
  rawDatabase: Database;
  redis?: RedisClient;
  /** Prefix of every Redis key and channel, with a hash tag in Cluster mode. */
  redisPrefix: string;
  monitor: DependencyMonitor;
  encryptor: Encryptor;
  cookieKeys: string[];
  accounts: AccountStore;
  clients: ClientStore;
  mfa: MfaStore;
  settings: SettingsStore;
  audit: AuditLog;
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
  const monitor = new DependencyMonitor(logger);
  let rawDatabase: Database;
  try {
    rawDatabase =
      options.role === 'command' && !config.databaseUrl
        ? await openEmbeddedForCommand(config.dataDir)
        : await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  } catch (error) {
    throw new Error(`cannot connect to the database: ${describeError(error)}`, { cause: error });
  }
  rawDatabase.onIdleError = (error) => {
    if (isDatabaseOutage(error)) monitor.markDown('database', error);
    else logger.warn({ err: error }, 'an idle database connection failed; it will be replaced');
  };
  const database =
    rawDatabase.kind === 'postgres' ? watchDatabase(rawDatabase, monitor) : rawDatabase;
  try {
    if (options.migrateOnOpen) {
      const applied = await migrate(database);
      if (applied.length > 0) logger.info({ migrations: applied }, 'database migrations applied');
    }
  } catch (error) {
    await rawDatabase.close();
    throw error;
  }

  let redis: RedisClient | undefined;
  let redisPrefix = config.redisPrefix;
  let closing = false;
  if (options.redis && config.redisUrl) {
    const target = parseRedisUrl(config.redisUrl);
    redisPrefix = effectiveRedisPrefix(target, config.redisPrefix);
    const client = createRedisClient(target);
    redis = client;
    // Until the first connection succeeds, a failure stops start-up instead. ioredis gives
    // connect() only "Connection is closed" and the socket's error to this listener.
    let firstError: unknown;
    const onFirstError = (error: unknown) => (firstError ??= error);
    client.on('error', onFirstError);
    try {
      await client.connect();
    } catch (error) {
      client.disconnect();
      await rawDatabase.close();
      const reason = describeError(firstError ?? error);
      throw new Error(`cannot connect to Redis: ${reason}`, { cause: error });
    }
    // ioredis stays in database 0 when Redis rejects the number in REDIS_URL, which would mix
    // idp's keys with another application's.
    const redisDatabase = target.kind === 'cluster' ? 0 : selectedDatabase(target);
    if (redisDatabase > 0) {
      const info = String(await client.call('CLIENT', 'INFO'));
      if (!new RegExp(`\\bdb=${redisDatabase}\\b`).test(info)) {
        client.disconnect();
        await rawDatabase.close();
        throw new Error(
          `cannot use Redis database ${redisDatabase} of REDIS_URL: Redis has fewer databases (see its 'databases' setting)`,
        );
      }
    }
    client.off('error', onFirstError);
    client.on('error', (error: Error) => {
      if (!closing) monitor.markDown('redis', error);
    });
    client.on('close', () => {
      if (!closing) monitor.markDown('redis', new Error('connection closed'));
    });
    client.on('ready', () => monitor.markUp('redis'));
  }

  const encryptor = new Encryptor(encryptionKeys);

  return {
    config,
    database,
    rawDatabase,
    redis,
    redisPrefix,
    monitor,
    encryptor,
    cookieKeys,
    accounts: new AccountStore(database),
    clients: new ClientStore(database, encryptor),
    mfa: new MfaStore(database, encryptor),
    settings: new SettingsStore(database),
    audit: new AuditLog(database),
    async close() {
      closing = true;
      if (redis) await redis.quit().catch(() => redis.disconnect());
      await rawDatabase.close();
    },
  };
}

/** Converts dependency outages in an adapter into oidc-provider's temporarily_unavailable. */
function guardAdapter(adapter: Adapter, monitor: DependencyMonitor, redisBacked: boolean): Adapter {
  const guard =
    <Args extends unknown[], Result>(method: (...args: Args) => Promise<Result>) =>
    async (...args: Args): Promise<Result> => {
      const startedAt = performance.now();
      try {
        const result = await method.apply(adapter, args);
        if (redisBacked) monitor.markUp('redis');

        return result;
      } catch (error) {
        if (isUnavailableError(error)) throw temporarilyUnavailable();
        if (redisBacked && isRedisOutage(error)) {
          monitor.markDown('redis', error, startedAt);
          throw temporarilyUnavailable();
        }
        throw error;
      }
    };

  return {
    upsert: guard(adapter.upsert),
    find: guard(adapter.find),
    findByUserCode: guard(adapter.findByUserCode),
    findByUid: guard(adapter.findByUid),
    consume: guard(adapter.consume),
    destroy: guard(adapter.destroy),
    revokeByGrantId: guard(adapter.revokeByGrantId),
  };
}

/** The storage of sessions, tokens, short-lived sign-in steps and attempt counters. */
export interface SessionStorage {
  /** oidc-provider's adapter factory: clients from Postgres, the rest from Redis or memory. */
  adapter: (model: string) => Adapter;
  /** The session adapter class, which can also end every session of an account. */
  Sessions: SessionStoreAdapter;
  attempts: AttemptCounter;
}

/** Opens the session storage: Redis when REDIS_URL is set, otherwise this process's memory. */
export function createSessionStorage(
  services: Services,
  logger: Logger,
  redisPrefix = services.redisPrefix,
  tokenCache?: TokenCache,
): SessionStorage {
  const clientAdapter = guardAdapter(new ClientAdapter(services.clients), services.monitor, false);
  if (services.redis) {
    // A Cluster client takes the same commands; the adapter only needs those.
    const Sessions = createRedisAdapter(services.redis as Redis, redisPrefix, tokenCache);

    return {
      adapter: (model) =>
        model === 'Client'
          ? clientAdapter
          : guardAdapter(new Sessions(model), services.monitor, true),
      Sessions,
      attempts: createRedisAttemptCounter(services.redis as Redis, redisPrefix),
    };
  }
  logger.warn(
    'REDIS_URL is not set: sessions and tokens are kept in this process, so this node must be the only one and a restart signs everyone out',
  );
  const Sessions = createMemoryAdapter();

  return {
    adapter: (model) => (model === 'Client' ? clientAdapter : new Sessions(model)),
    Sessions,
    attempts: createMemoryAttemptCounter(),
  };
}

/**
 * Wires the sign-in steps and the account page: the session storage, the second-factor policy
 * that oidc-provider's login prompt consults, and the dependencies of the routes. Build it once
 * per process and share it between providers, so every provider sees one session store.
 */
export function createSignIn(
  services: Services,
  logger: Logger,
  redisPrefix = services.redisPrefix,
  lockoutPolicy: Partial<LockoutPolicy> = {},
  tokenCache?: TokenCache,
) {
  const storage = createSessionStorage(services, logger, redisPrefix, tokenCache);
  const policy = new SecondFactorPolicy(services.database);
  const rateLimiter = createRateLimiter(services.redis, redisPrefix, {
    ...DEFAULT_LOCKOUT_POLICY,
    ...lockoutPolicy,
  });
  const deps: Omit<InteractionDeps & AccountPageDeps, 'provider'> = {
    accounts: services.accounts,
    logger,
    audit: services.audit,
    rateLimiter: watchRateLimiter(rateLimiter, services.monitor),
    mfa: services.mfa,
    policy,
    attempts: new CodeAttempts(storage.attempts, logger),
    loginSteps: new ShortLivedStore(storage.adapter('LoginStep')),
    accountSteps: new ShortLivedStore(storage.adapter('AccountStep')),
    encryptor: services.encryptor,
    totpIssuer: services.config.totpIssuer,
    sessions: storage.Sessions,
    cookieKeys: services.cookieKeys,
    sessionLifetimes: {
      idleSeconds: services.config.sessionIdleSeconds,
      maxSeconds: services.config.sessionMaxSeconds,
    },
  };

  return {
    adapter: storage.adapter,
    needsSecondFactor: async (input: PolicyInput) =>
      (await policy.decide(input)).reasons.length > 0,
    deps,
  };
}
