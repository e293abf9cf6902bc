import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { Agent } from 'undici';
import { AccountStore } from '../../src/accounts/store.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { type Database, openDatabase } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { type RunningServer, startServer } from '../../src/main.ts';
import { type ClientInput, ClientStore } from '../../src/oidc/clients.ts';
import { Encryptor } from '../../src/security/encryption.ts';
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

export interface TestIdp {
  issuer: string;
  port: number;
  config: Config;
  certificates: TestCertificates;
  /** An undici dispatcher that trusts the test authority, for fetch and openid-client. */
  dispatcher: Agent;
  database: Database;
  testDatabase: TestDatabase;
  testRedis: TestRedis;
  accounts: AccountStore;
  clients: ClientStore;
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
}

/**
 * Starts a real idp over https on 127.0.0.1 with a database, Redis key prefix and certificate
 * authority of its own, and returns handles to inspect it.
 */
export async function startTestIdp(options: TestIdpOptions = {}): Promise<TestIdp> {
  const [testDatabase, testRedis, certificates, port] = await Promise.all([
    createTestDatabase(),
    connectTestRedis(),
    createTestCertificates(options.keyType ?? 'ec'),
    freePort(),
  ]);
  const encryptionKey = randomBytes(32);
  const env: Record<string, string> = {
    IDP_ISSUER: `https://localhost:${port}`,
    IDP_PORT: String(port),
    IDP_HOST: '127.0.0.1',
    DATABASE_URL: testDatabase.url,
    REDIS_URL: TEST_REDIS_URL,
    IDP_COOKIE_KEYS: randomBytes(32).toString('base64url'),
    IDP_ENCRYPTION_KEY: encryptionKey.toString('base64'),
    IDP_TLS_CERT_FILE: certificates.certFile,
    IDP_TLS_KEY_FILE: certificates.keyFile,
    IDP_DATA_DIR: certificates.dir,
    LOG_LEVEL: 'info',
    ...options.env,
  };
  const config = loadConfig(env);
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
  const logger = createLogger(config.logLevel, sink);
  let server: RunningServer;
  try {
    server = await startServer(config, logger, { redisPrefix: testRedis.prefix });
  } catch (error) {
    await testRedis.cleanup();
    await testDatabase.drop();
    throw error;
  }
  const database = await openDatabase({ databaseUrl: testDatabase.url, dataDir: certificates.dir });
  const dispatcher = new Agent({
    connect: { ca: [certificates.caCert, ...(options.extraCa ? [options.extraCa] : [])] },
  });

  return {
    issuer: env['IDP_ISSUER'] as string,
    port,
    config,
    certificates,
    dispatcher,
    database,
    testDatabase,
    testRedis,
    accounts: new AccountStore(database),
    clients: new ClientStore(database, new Encryptor([encryptionKey])),
    logs,
    rawLog: () => raw,
    server,
    async close() {
      await server.close();
      await dispatcher.close();
      await database.close();
      await testRedis.cleanup();
      await testDatabase.drop();
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
