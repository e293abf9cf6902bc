import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { Redis } from 'ioredis';
import type { JWK } from 'jose';
import type { FindAccount } from 'oidc-provider';
import type { Config } from './config.ts';
import { shareEmbeddedDatabase } from './db/database.ts';
import { createSubscriber, createTrackingConnection } from './db/redis.ts';
import type { Logger } from './logger.ts';
import { tokenCachePrefixes } from './oidc/adapters/redis.ts';
import { TokenCache } from './oidc/adapters/token-cache.ts';
import { ACCOUNT_CACHE_SECONDS, createFindAccount } from './oidc/account.ts';
import { KEY_RELOAD_SECONDS, keysChannel, SigningKeyring } from './oidc/keyring.ts';
import { ensureSigningKeys } from './oidc/keys.ts';
import { createProvider, type ProviderOptions } from './oidc/provider.ts';
import { type LockoutPolicy, lockoutPolicyOf } from './security/rate-limit.ts';
import { configureApp, type Readiness } from './server/app.ts';
import { IdleMemoryRelease } from './server/idle-memory.ts';
import {
  countProviderEvents,
  createMetrics,
  createMetricsServer,
  type Metrics,
} from './server/metrics.ts';
import { isUnavailableError, temporarilyUnavailable } from './server/outages.ts';
import { ensureSelfSignedCertificate, loadTlsFiles, MIN_TLS_VERSION } from './server/tls.ts';
import { createSignIn, openServices, type Services } from './services.ts';

export interface RunningServer {
  server: Server | HttpsServer;
  /** The port the server listens on, useful when the configuration asked for port 0. */
  port: number;
  /** The port of the separate /metrics listener, when IDP_METRICS_PORT is set. */
  metricsPort?: number;
  metrics: Metrics;
  /** Reloads the TLS certificate and key from disk; keeps the old pair when the new one fails. */
  reloadTls(): void;
  /** Reads the signing keys from Postgres now instead of at the next scheduled reload. */
  reloadKeys(): Promise<void>;
  /**
   * Stops accepting connections, lets in-flight requests finish (their responses carry
   * `Connection: close`), then closes the pools. Resolves when everything is closed.
   */
  close(): Promise<void>;
  /** Cuts every connection still open, for when close() takes longer than allowed. */
  destroyConnections(): void;
}

export interface ServerOptions {
  /** Prefix of the Redis keys, so that tests can share one Redis. */
  redisPrefix?: string;
  /** Changes to the default failed sign-in policy, such as shorter times for tests. */
  lockoutPolicy?: Partial<LockoutPolicy>;
  /** Replaces fetch for outgoing requests such as back-channel logout. */
  outboundFetch?: ProviderOptions['fetch'];
}

/** Returns the certificate files to serve: the configured pair, or the embedded self-signed one. */
async function certificateFiles(config: Config, logger: Logger) {
  if (config.tls) return config.tls;
  const generated = await ensureSelfSignedCertificate(config.dataDir, config.issuer.hostname);
  logger.warn(
    { certFile: generated.certFile, created: generated.created },
    'no TLS certificate configured: serving a self-signed certificate for localhost; trust it in your browser or set IDP_TLS_CERT_FILE and IDP_TLS_KEY_FILE',
  );

  return generated;
}

const READY_TIMEOUT_MS = 2000;

/** Checks that Postgres and Redis respond within a short time, naming those that do not. */
async function checkDependencies(services: Services): Promise<Readiness> {
  const startedAt = performance.now();
  const within = (work: Promise<unknown>) =>
    Promise.race([
      work.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(resolve, READY_TIMEOUT_MS, false).unref()),
    ]).catch(() => false);
  const [database, redis] = await Promise.all([
    within(services.database.query('SELECT 1')),
    services.redis ? within(services.redis.ping()) : Promise.resolve(undefined),
  ]);
  if (redis === true) services.monitor.markUp('redis');
  if (redis === false) {
    services.monitor.markDown('redis', new Error('PING timed out or failed'), startedAt);
  }

  return { database, ...(redis === undefined ? {} : { redis }) };
}

/** Wraps findAccount so that a Postgres outage becomes temporarily_unavailable. */
function guardFindAccount(findAccount: FindAccount): FindAccount {
  return async (...args) => {
    try {
      return await findAccount(...args);
    } catch (error) {
      if (isUnavailableError(error)) throw temporarilyUnavailable();
      throw error;
    }
  };
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Counts requests in flight and keeps every TCP connection, including those still in the TLS
 * handshake, which node's own closeIdleConnections does not see.
 */
function trackConnections(server: Server | HttpsServer) {
  const sockets = new Set<Socket>();
  let inFlight = 0;
  const waiters: (() => void)[] = [];
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    res.once('close', () => {
      inFlight--;
      if (inFlight === 0) for (const wake of waiters.splice(0)) wake();
    });
  });

  return {
    /** Resolves once no request is in flight. */
    idle: () =>
      new Promise<void>((resolve) => (inFlight === 0 ? resolve() : waiters.push(resolve))),
    destroyAll() {
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * Starts idp: opens the database and Redis, applies migrations, makes sure signing keys exist, and
 * listens over https (or plain http behind a trusted TLS proxy).
 */
export async function startServer(
  config: Config,
  logger: Logger,
  options: ServerOptions = {},
): Promise<RunningServer> {
  const services = await openServices(config, logger, {
    migrateOnOpen: true,
    redis: true,
    role: 'server',
  });
  const redisPrefix = options.redisPrefix ?? services.redisPrefix;
  const shared = config.databaseUrl
    ? undefined
    : await shareEmbeddedDatabase(services.rawDatabase, config.dataDir);
  if (shared) {
    // An empty DATABASE_URL from a bad substitution also ends up here, so the log names it.
    logger.warn(
      { dataDir: config.dataDir },
      'DATABASE_URL is not set: accounts, clients and keys are kept in the embedded database in the data folder, for this one node',
    );
  }
  let keyring: SigningKeyring | undefined;
  // A Cluster may move the keys to another node, which would not report their changes, so only a
  // single server or a Sentinel group's primary backs the token cache.
  const tokenCache =
    services.redis instanceof Redis
      ? new TokenCache({
          connection: createTrackingConnection(services.redis),
          prefixes: tokenCachePrefixes(redisPrefix),
          logger,
        })
      : undefined;
  try {
    await ensureSigningKeys(services.database, services.encryptor);
    await tokenCache?.start();
    const metrics = createMetrics({
      database: services.rawDatabase,
      redis: services.redis,
      monitor: services.monitor,
      tokenCache,
    });
    const signIn = createSignIn(
      services,
      logger,
      redisPrefix,
      { ...lockoutPolicyOf(config), ...options.lockoutPolicy },
      tokenCache,
    );
    const findAccount = guardFindAccount(
      createFindAccount(services.accounts, { cacheSeconds: ACCOUNT_CACHE_SECONDS }),
    );
    let draining = false;

    // oidc-provider takes its keys only when it is built, so a key change builds a new provider
    // behind the same request handler. Requests already running finish on their provider.
    const build = (signingKeys: JWK[]): Handler => {
      const provider = createProvider({
        issuer: config.issuer,
        adapter: signIn.adapter,
        needsSecondFactor: signIn.needsSecondFactor,
        findAccount,
        signingKeys,
        cookieKeys: services.cookieKeys,
        sessionMaxSeconds: config.sessionMaxSeconds,
        sessionIdleSeconds: config.sessionIdleSeconds,
        logger,
        fetch: options.outboundFetch,
      });
      countProviderEvents(provider, metrics);
      configureApp({
        ...signIn.deps,
        config,
        provider,
        logger,
        accounts: services.accounts,
        metrics,
        serveMetrics: config.metricsPort === undefined,
        isDraining: () => draining,
        checkReady: () => checkDependencies(services),
      });

      return provider.callback();
    };

    let handler: Handler;
    keyring = new SigningKeyring({
      database: services.database,
      encryptor: services.encryptor,
      logger,
      retiredKeepSeconds: config.sessionMaxSeconds + 2 * KEY_RELOAD_SECONDS,
      onChange: (keys) => {
        handler = build(keys);
      },
      notices: services.redis
        ? { subscriber: createSubscriber(services.redis), channel: keysChannel(redisPrefix) }
        : undefined,
    });
    handler = build(await keyring.start());
    await keyring.watch();
    const handle: Handler = (req, res) => handler(req, res);

    const plainHttp = config.trustProxy !== false && !config.tls;
    let tlsFiles: { certFile: string; keyFile: string } | undefined;
    let server: Server | HttpsServer;
    if (plainHttp) {
      server = createHttpServer(handle);
    } else {
      tlsFiles = await certificateFiles(config, logger);
      const pair = loadTlsFiles(tlsFiles.certFile, tlsFiles.keyFile);
      server = createHttpsServer(
        { cert: pair.cert, key: pair.key, minVersion: MIN_TLS_VERSION },
        handle,
      );
    }
    server.headersTimeout = 20_000;
    server.requestTimeout = 30_000;
    const connections = trackConnections(server);
    const listen = (target: Server | HttpsServer, port: number) =>
      new Promise<number>((resolve, reject) => {
        target.once('error', reject);
        target.listen(port, config.host, () => {
          target.off('error', reject);
          resolve((target.address() as AddressInfo).port);
        });
      });
    const port = await listen(server, config.port);
    let metricsServer: Server | undefined;
    let metricsPort: number | undefined;
    if (config.metricsPort !== undefined) {
      metricsServer = createMetricsServer(metrics);
      try {
        metricsPort = await listen(metricsServer, config.metricsPort);
      } catch (error) {
        server.close();
        throw error;
      }
    }
    logger.info(
      { issuer: config.issuer.href, port, host: config.host, tls: !plainHttp, metricsPort },
      'idp is listening',
    );

    let closing: Promise<void> | undefined;
    const stopKeys = keyring;
    const idleMemory = new IdleMemoryRelease({ logger });

    return {
      server,
      port,
      metricsPort,
      metrics,
      reloadTls() {
        if (!tlsFiles || !('setSecureContext' in server)) return;
        try {
          const pair = loadTlsFiles(tlsFiles.certFile, tlsFiles.keyFile);
          server.setSecureContext({ cert: pair.cert, key: pair.key, minVersion: MIN_TLS_VERSION });
          logger.info({ certFile: tlsFiles.certFile }, 'TLS certificate reloaded');
        } catch (error) {
          logger.error(
            { reason: (error as Error).message },
            'TLS certificate reload failed; keeping the previous certificate',
          );
        }
      },
      reloadKeys: () => stopKeys.refresh(),
      close() {
        closing ??= (async () => {
          draining = true;
          idleMemory.stop();
          const closed = new Promise<void>((resolve) => server.close(() => resolve()));
          metricsServer?.close();
          metricsServer?.closeAllConnections();
          await connections.idle();
          // Nothing is in flight: what is left are idle keep-alive connections and connections
          // that never sent a request.
          connections.destroyAll();
          await closed;
          await stopKeys.stop();
          await tokenCache?.close();
          await shared?.stop();
          await services.close();
        })();

        return closing;
      },
      destroyConnections: () => connections.destroyAll(),
    };
  } catch (error) {
    await keyring?.stop();
    await tokenCache?.close();
    await shared?.stop();
    await services.close();
    throw error;
  }
}
