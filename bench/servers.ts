import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent } from 'undici';
import { hashPassword } from '../src/accounts/password.ts';
import { canonicalUsername } from '../src/accounts/username.ts';
import { type Database, openDatabase } from '../src/db/database.ts';
import { ClientStore } from '../src/oidc/clients.ts';
import { Encryptor } from '../src/security/encryption.ts';
import { freePort } from '../test/support/idp.ts';
import { createTestDatabase } from '../test/support/postgres.ts';
import { connectTestRedis, TEST_REDIS_URL, type TestRedis } from '../test/support/redis.ts';
import { createTestCertificates, type TestCertificates } from '../test/support/tls.ts';

export const BENCH_PASSWORD = 'bench passphrase that is long enough';
export const REDIRECT_URI = 'https://app.example.test/callback';

/**
 * Memory of a server process in bytes after a full garbage collection. For idp it adds the rest of
 * process.memoryUsage(), and the resident memory left once idp gives back V8's pooled heap pages.
 */
export type ServerMemory = Partial<NodeJS.MemoryUsage> & { rss: number; rssReleased?: number };

/** One server under test and what a client needs to reach it. */
export interface Target {
  name: 'idp' | 'baseline';
  issuer: string;
  port: number;
  clientId: string;
  clientSecret: string;
  /** Trusts the run's certificate authority. */
  dispatcher: Agent;
  child: ChildProcess;
  /** Memory of the server process after a full garbage collection. */
  memory(): Promise<ServerMemory>;
  /** CPU seconds the server process has used so far, user and system. */
  cpuSeconds(): Promise<number>;
}

export interface BenchServers {
  idp: Target;
  baseline: Target;
  /** Encrypts with idp's key, for secrets the bench stores as idp would. */
  encryptor: Encryptor;
  certificates: TestCertificates;
  database: Database;
  redis: TestRedis;
  /** Log file of the idp process, kept in the run's temporary folder. */
  idpLog: string;
  close(): Promise<void>;
}

/** Asks a server process to collect garbage and report its memory; the baseline only has /proc. */
async function memoryOf(child: ChildProcess): Promise<ServerMemory> {
  if (child.connected) {
    const reply = new Promise<ServerMemory | undefined>((resolve) => {
      // A full collection after heavy load takes a while on a busy machine.
      const timer = setTimeout(() => resolve(undefined), 15_000);
      child.once('message', (message: { memory?: ServerMemory }) => {
        clearTimeout(timer);
        resolve(message.memory);
      });
    });
    child.send('memory');
    const usage = await reply;
    if (usage !== undefined) return usage;
  }
  const status = await readFile(`/proc/${child.pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];

  return { rss: Number(kb ?? 0) * 1024 };
}

/** Reads a process's user and system CPU time from /proc, in seconds (clock ticks of 10 ms). */
async function cpuSeconds(pid: number | undefined): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');

  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Forks a server script and waits for it to report that it listens. */
async function forkServer(
  script: string,
  env: Record<string, string>,
  logFile: string,
  nodeFlags: string[] = [],
): Promise<ChildProcess> {
  const log = openSync(logFile, 'a');
  const profileDir = process.env['BENCH_PROFILE'];
  const child = fork(path.join(import.meta.dirname, script), [], {
    env: { ...process.env, ...env },
    // BENCH_PROFILE=DIR writes a CPU profile of each server there when it stops.
    execArgv: [
      '--expose-gc',
      ...nodeFlags,
      ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
    ],
    stdio: ['ignore', log, log, 'ipc'],
  });
  closeSync(log);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${script} did not start within 60 s`)),
      60_000,
    );
    child.once('message', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with code ${code} before listening; see ${logFile}`));
    });
  });

  return child;
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || !child.connected) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.send('stop');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * Inserts `count` accounts named bench-00000 and up, all with the same argon2id hash of
 * BENCH_PASSWORD (hashed once, with today's parameters, so sign-in never rehashes).
 */
export async function seedAccounts(database: Database, count: number): Promise<string[]> {
  const hash = await hashPassword(BENCH_PASSWORD);
  const names = Array.from({ length: count }, (_, i) => `bench-${String(i).padStart(5, '0')}`);
  for (let start = 0; start < names.length; start += 1000) {
    const batch = names.slice(start, start + 1000);
    await database.query(
      `INSERT INTO accounts (id, username, username_canonical, email, name, password_hash)
       SELECT gen_random_uuid(), u, c, u || '@example.org', 'Bench User', $3
       FROM unnest($1::text[], $2::text[]) AS t(u, c)`,
      [batch, batch.map(canonicalUsername), hash],
    );
  }

  return names;
}

/**
 * Starts idp (Postgres database and Redis prefix of its own) and the baseline, both on 127.0.0.1
 * over TLS with one certificate made for this run, and registers the same client on each.
 */
export async function startServers(options: { accounts: number }): Promise<BenchServers> {
  const [testDatabase, redis, certificates, idpPort, baselinePort] = await Promise.all([
    createTestDatabase(),
    connectTestRedis(),
    createTestCertificates('ec'),
    freePort(),
    freePort(),
  ]);
  const cleanups: (() => Promise<void>)[] = [() => testDatabase.drop(), () => redis.cleanup()];
  const close = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  };
  try {
    const encryptionKey = randomBytes(32);
    const idpLog = path.join(certificates.dir, 'idp.log');
    const idpChild = await forkServer(
      'idp-server.ts',
      {
        IDP_ISSUER: `https://localhost:${idpPort}`,
        IDP_PORT: String(idpPort),
        IDP_HOST: '127.0.0.1',
        DATABASE_URL: testDatabase.url,
        REDIS_URL: TEST_REDIS_URL,
        BENCH_REDIS_PREFIX: redis.prefix,
        IDP_COOKIE_KEYS: randomBytes(32).toString('base64url'),
        IDP_ENCRYPTION_KEY: encryptionKey.toString('base64'),
        IDP_TLS_CERT_FILE: certificates.certFile,
        IDP_TLS_KEY_FILE: certificates.keyFile,
        IDP_DATA_DIR: certificates.dir,
        LOG_LEVEL: process.env['BENCH_IDP_LOG_LEVEL'] ?? 'info',
      },
      idpLog,
      // The young-generation limit that `npm start` and the image set. BENCH_IDP_NODE_FLAGS adds
      // Node flags to the idp process only, to compare settings, and a flag given twice takes
      // its last value.
      [
        '--max-semi-space-size=16',
        ...(process.env['BENCH_IDP_NODE_FLAGS'] ?? '').split(' ').filter(Boolean),
      ],
    );
    cleanups.push(() => stopServer(idpChild));

    const database = await openDatabase({
      databaseUrl: testDatabase.url,
      dataDir: certificates.dir,
    });
    cleanups.push(() => database.close());
    const clientSecret = randomBytes(32).toString('base64url');
    const clientId = 'bench-app';
    const encryptor = new Encryptor([encryptionKey]);
    await new ClientStore(database, encryptor).create({
      clientId,
      name: 'Bench App',
      redirectUris: [REDIRECT_URI],
      clientSecret,
    });
    await seedAccounts(database, options.accounts);

    const baselineChild = await forkServer(
      'baseline-server.ts',
      {
        BENCH_PORT: String(baselinePort),
        BENCH_CLIENT: JSON.stringify({ clientId, clientSecret, redirectUri: REDIRECT_URI }),
        BENCH_COOKIE_KEY: randomBytes(32).toString('base64url'),
        BENCH_TLS_CERT_FILE: certificates.certFile,
        BENCH_TLS_KEY_FILE: certificates.keyFile,
      },
      path.join(certificates.dir, 'baseline.log'),
    );
    cleanups.push(() => stopServer(baselineChild));

    const target = (name: Target['name'], port: number, child: ChildProcess): Target => {
      const dispatcher = new Agent({ connect: { ca: certificates.caCert }, connections: 64 });
      cleanups.push(() => dispatcher.close());

      return {
        name,
        issuer: `https://localhost:${port}`,
        port,
        clientId,
        clientSecret,
        dispatcher,
        child,
        memory: () => memoryOf(child),
        cpuSeconds: () => cpuSeconds(child.pid),
      };
    };

    return {
      idp: target('idp', idpPort, idpChild),
      baseline: target('baseline', baselinePort, baselineChild),
      encryptor,
      certificates,
      database,
      redis,
      idpLog,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
