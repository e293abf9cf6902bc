import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Config } from './config.ts';
import { shareEmbeddedDatabase } from './db/database.ts';
import type { Logger } from './logger.ts';
import { createFindAccount } from './oidc/account.ts';
import { ensureSigningKeys, loadSigningKeys } from './oidc/keys.ts';
import { createProvider } from './oidc/provider.ts';
import { configureApp } from './server/app.ts';
import { ensureSelfSignedCertificate, loadTlsFiles, MIN_TLS_VERSION } from './server/tls.ts';
import { createAdapterFactory, openServices, REDIS_PREFIX } from './services.ts';

export interface RunningServer {
  server: Server | HttpsServer;
  /** The port the server listens on, useful when the configuration asked for port 0. */
  port: number;
  /** Reloads the TLS certificate and key from disk; keeps the old pair when the new one fails. */
  reloadTls(): void;
  close(): Promise<void>;
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

/**
 * Starts idp: opens the database and Redis, applies migrations, makes sure signing keys exist, and
 * listens over https (or plain http behind a trusted TLS proxy).
 */
export async function startServer(
  config: Config,
  logger: Logger,
  options: { redisPrefix?: string } = {},
): Promise<RunningServer> {
  const services = await openServices(config, logger, {
    migrateOnOpen: true,
    redis: true,
    role: 'server',
  });
  const shared = config.databaseUrl
    ? undefined
    : await shareEmbeddedDatabase(services.database, config.dataDir);
  try {
    await ensureSigningKeys(services.database, services.encryptor);
    const provider = createProvider({
      issuer: config.issuer,
      adapter: createAdapterFactory(services, logger, options.redisPrefix ?? REDIS_PREFIX),
      findAccount: createFindAccount(services.accounts),
      signingKeys: await loadSigningKeys(services.database, services.encryptor),
      cookieKeys: services.cookieKeys,
      sessionMaxSeconds: config.sessionMaxSeconds,
      logger,
    });
    const app = configureApp({
      config,
      provider,
      logger,
      accounts: services.accounts,
      checkReady: async () => {
        await services.database.query('SELECT 1').catch(() => {
          throw new Error('database is not answering');
        });
        await services.redis?.ping().catch(() => {
          throw new Error('Redis is not answering');
        });
      },
    });

    const plainHttp = config.trustProxy !== false && !config.tls;
    let tlsFiles: { certFile: string; keyFile: string } | undefined;
    let server: Server | HttpsServer;
    if (plainHttp) {
      server = createHttpServer(app.callback());
    } else {
      tlsFiles = await certificateFiles(config, logger);
      const pair = loadTlsFiles(tlsFiles.certFile, tlsFiles.keyFile);
      server = createHttpsServer(
        { cert: pair.cert, key: pair.key, minVersion: MIN_TLS_VERSION },
        app.callback(),
      );
    }
    server.headersTimeout = 20_000;
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    const port = (server.address() as AddressInfo).port;
    logger.info(
      { issuer: config.issuer.href, port, host: config.host, tls: !plainHttp },
      'idp is listening',
    );

    return {
      server,
      port,
      reloadTls() {
        if (!tlsFiles || !('setSecureContext' in server)) return;
        try {
          const pair = loadTlsFiles(tlsFiles.certFile, tlsFiles.keyFile);
          server.setSecureContext({ cert: pair.cert, key: pair.key, minVersion: MIN_TLS_VERSION });
          logger.info({ certFile: tlsFiles.certFile }, 'TLS certificate reloaded');
        } catch (error) {
          logger.error({ err: error }, 'TLS certificate reload failed; keeping the previous one');
        }
      },
      async close() {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        });
        await shared?.stop();
        await services.close();
      },
    };
  } catch (error) {
    await shared?.stop();
    await services.close();
    throw error;
  }
}
