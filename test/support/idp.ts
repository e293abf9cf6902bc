import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { Agent } from 'undici';
import { AccountStore } from '../../src/accounts/store.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { type Database, openDatabase } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { type RunningServer, type ServerOptions, startServer } from '../../src/main.ts';
import { type ClientInput, ClientStore } from '../../src/oidc/clients.ts';
import { MfaStore } from '../../src/mfa/store.ts';
import { Encryptor } from '../../src/security/encryption.ts';
import { SettingsStore } from '../../src/settings.ts';
import { createTestDatabase, type TestDatabase } from './postgres.ts';
import { connectTestRedis, TEST_REDIS_URL, type TestRedis } from './redis.ts';
import { createTestCertificates, type TestCertificates } from './tls.ts';

/** Returns a TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/**
 * What one or more test idp nodes share: a database, a Redis key prefix, a certificate authority
 * and the secrets. `env` is the environment of a node, without its port.
 */
export interface TestSetup {
  env: Record<string, string>;
  encryptionKey: Buffer;
  testDatabase: TestDatabase;
  testRedis: TestRedis;
  certificates: TestCertificates;
  /** An undici dispatcher that trusts the test authority, for fetch and openid-client. */
  dispatcher: Agent;
  /** Drops the database and the Redis keys. */
  cleanup(): Promise<void>;
}

/** Creates a database, Redis prefix, certificates and secrets for test nodes. */
export async function createTestSetup(
  options: { keyType?: 'ec' | 'rsa'; issuerPort?: number; extraCa?: string } = {},
): Promise<TestSetup> {
  const [testDatabase, testRedis, certificates, issuerPort] = await Promise.all([
    createTestDatabase(),
    connectTestRedis(),
    createTestCertificates(options.keyType ?? 'ec'),
    options.issuerPort ?? freePort(),
  ]);
  const encryptionKey = randomBytes(32);
  const dispatcher = new Agent({
    connect: { ca: [certificates.caCert, ...(options.extraCa ? [options.extraCa] : [])] },
  });

  return {
    env: {
      IDP_ISSUER: `https://localhost:${issuerPort}`,
      IDP_PORT: String(issuerPort),
      IDP_HOST: '127.0.0.1',
      DATABASE_URL: testDatabase.url,
      REDIS_URL: TEST_REDIS_URL,
      IDP_REDIS_PREFIX: testRedis.prefix,
      IDP_COOKIE_KEYS: randomBytes(32).toString('base64url'),
      IDP_ENCRYPTION_KEY: encryptionKey.toString('base64'),
      IDP_TLS_CERT_FILE: certificates.certFile,
      IDP_TLS_KEY_FILE: certificates.keyFile,
      IDP_DATA_DIR: certificates.dir,
      LOG_LEVEL: 'info',
    },
    encryptionKey,
    testDatabase,
    testRedis,
    certificates,
    dispatcher,
    async cleanup() {
      await dispatcher.close();
      await testRedis.cleanup();
      await testDatabase.drop();
    },
  };
}

export interface TestIdp {
  /** The issuer, shared by every node of a setup. */
  issuer: string;
  /** This node's own address, which differs from the issuer for a second node. */
  url: string;
  port: number;
  config: Config;
  certificates: TestCertificates;
  /** An undici dispatcher that trusts the test authority, for fetch and openid-client. */
  dispatcher: Agent;
  database: Database;
  testDatabase: TestDatabase;
  testRedis: TestRedis;
  setup: TestSetup;
  accounts: AccountStore;
  clients: ClientStore;
  mfa: MfaStore;
  settings: SettingsStore;
  /** Every log line the server wrote, parsed. */
  logs: Record<string, unknown>[];
  /** The raw log output, for checks that no secret appears anywhere in it. */
  rawLog(): string;
  server: RunningServer;
  close(): Promise<void>;
}

export interface TestIdpOptions {
  keyType?: 'ec' | 'rsa';
  env?: Record<string, string>;
  /** Another certificate authority the test clients trust, such as a TLS proxy's. */
  extraCa?: string;
  /** Another node's setup to share: same database, Redis prefix, issuer and secrets. */
  setup?: TestSetup;
  /** Options passed on to startServer, such as a shorter lockout policy. */
  server?: Omit<ServerOptions, 'redisPrefix'>;
}

/** Collects a logger's JSON lines, parsed and raw. */
export function captureLogs(level: string) {
  let raw = '';
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      const text = chunk.toString('utf8');
      raw += text;
      for (const line of text.split('\n').filter(Boolean)) {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });

  return { logger: createLogger(level, sink), logs, rawLog: () => raw };
}

/**
 * Starts a real idp over https on 127.0.0.1 with a database, Redis key prefix and certificate
 * authority of its own (or those of `options.setup`), and returns handles to inspect it.
 */
export async function startTestIdp(options: TestIdpOptions = {}): Promise<TestIdp> {
  const owned = options.setup === undefined;
  const setup =
    options.setup ??
    (await createTestSetup({ keyType: options.keyType, extraCa: options.extraCa }));
  const ownPort = owned ? Number(setup.env['IDP_PORT']) : await freePort();
  const env: Record<string, string> = { ...setup.env, IDP_PORT: String(ownPort), ...options.env };
  const port = Number(env['IDP_PORT']);
  const config = loadConfig(env);
  const { logger, logs, rawLog } = captureLogs(config.logLevel);
  let server: RunningServer;
  try {
    server = await startServer(config, logger, options.server);
  } catch (error) {
    if (owned) await setup.cleanup();
    throw error;
  }
  const database = await openDatabase({
    databaseUrl: setup.testDatabase.url,
    dataDir: setup.certificates.dir,
  });

  return {
    issuer: env['IDP_ISSUER'] as string,
    // A node of its own is reached at the issuer, which may be a proxy in front of it.
    url: owned ? (env['IDP_ISSUER'] as string) : `https://localhost:${port}`,
    port,
    config,
    certificates: setup.certificates,
    dispatcher: setup.dispatcher,
    database,
    testDatabase: setup.testDatabase,
    testRedis: setup.testRedis,
    setup,
    accounts: new AccountStore(database),
    clients: new ClientStore(database, new Encryptor([setup.encryptionKey])),
    mfa: new MfaStore(database, new Encryptor([setup.encryptionKey])),
    settings: new SettingsStore(database),
    logs,
    rawLog,
    server,
    async close() {
      await server.close();
      await database.close();
      if (owned) await setup.cleanup();
    },
  };
}

export const TEST_PASSWORD = 'correct horse battery staple';

/** Registers a confidential client with a known secret and the given redirect URI. */
export async function createTestClient(
  idp: TestIdp,
  overrides: Partial<ClientInput> = {},
): Promise<{ clientId: string; clientSecret: string; redirectUri: string }> {
  const clientId = `app-${randomBytes(4).toString('hex')}`;
  const clientSecret = randomBytes(32).toString('base64url');
  const redirectUri = 'https://app.example.test/callback';
  await idp.clients.create({
    clientId,
    name: 'Case Manager',
    redirectUris: [redirectUri],
    postLogoutRedirectUris: ['https://app.example.test/signed-out'],
    clientSecret,
    ...overrides,
  });

  return { clientId, clientSecret, redirectUri };
}
