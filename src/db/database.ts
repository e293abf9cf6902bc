import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

/**
 * Something that runs one SQL statement with parameters: the pool, a session or a transaction.
 * A `prepared` name makes Postgres parse and plan the statement once per connection; give one only
 * to statements that name their columns, because a prepared `SELECT *` fails once a migration adds
 * a column.
 */
export interface Queryable {
  query<Row extends object = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    prepared?: string,
  ): Promise<Row[]>;
}

/** A Queryable bound to one connection, so session-level state such as advisory locks holds. */
export interface Session extends Queryable {
  /** Runs a script of several statements without parameters, such as a migration file. */
  exec(sql: string): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Called when an idle pooled connection fails (Postgres only); set it to log the error. */
  onIdleError?: (error: Error) => void;
  /** Runs `work` on one connection, which is released afterwards. */
  withSession<T>(work: (session: Session) => Promise<T>): Promise<T>;
  /** Runs `work` in a transaction, committed when it resolves and rolled back when it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

class PostgresDatabase implements Database {
  readonly kind = 'postgres';
  readonly pool: pg.Pool;
  /** Called when an idle pooled connection fails; replaced by the server to log it. */
  onIdleError: (error: Error) => void = () => {};

  constructor(connectionString: string, maxConnections = 10) {
    this.pool = new pg.Pool({
      connectionString,
      max: maxConnections,
      connectionTimeoutMillis: 5000,
    });
    // An idle connection that the server closes emits 'error' on the pool; without a listener
    // that would end the process. The next query reconnects or fails with its own error.
    this.pool.on('error', (error) => this.onIdleError(error));
  }

  async query<Row extends object>(
    sql: string,
    params: unknown[] = [],
    prepared?: string,
  ): Promise<Row[]> {
    const result = await this.pool.query(
      prepared ? { name: prepared, text: sql, values: params } : { text: sql, values: params },
    );

    return result.rows as Row[];
  }

  async withSession<T>(work: (session: Session) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      return await work({
        query: async <Row extends object>(sql: string, params: unknown[] = []) =>
          (await client.query(sql, params)).rows as Row[],
        exec: async (sql) => {
          await client.query(sql);
        },
      });
    } finally {
      client.release();
    }
  }

  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.withSession(async (session) => {
      await session.query('BEGIN');
      try {
        const result = await work(session);
        await session.query('COMMIT');

        return result;
      } catch (error) {
        await session.query('ROLLBACK');
        throw error;
      }
    });
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

class EmbeddedDatabase implements Database {
  readonly kind = 'pglite';
  readonly db: PGlite;
  readonly #release: () => void;

  constructor(db: PGlite, release: () => void = () => {}) {
    this.db = db;
    this.#release = release;
  }

  async query<Row extends object>(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.db.query<Row>(sql, params)).rows;
  }

  // PGlite has a single connection, so every session is that connection.
  withSession<T>(work: (session: Session) => Promise<T>): Promise<T> {
    return work({
      query: (sql, params) => this.query(sql, params),
      exec: async (sql) => {
        await this.db.exec(sql);
      },
    });
  }

  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) =>
      work({
        query: async <Row extends object>(sql: string, params: unknown[] = []) =>
          (await tx.query<Row>(sql, params)).rows,
      }),
    );
  }

  async close(): Promise<void> {
    try {
      await this.db.close();
    } finally {
      this.#release();
    }
  }
}

/** Returns the id of the live process, other than this one, that wrote the lock file, if any. */
function lockHolder(lockFile: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(lockFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  // After a container restart the server may run under the id its predecessor had.
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0);

    return pid;
  } catch (error) {
    // EPERM: the process exists but belongs to another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

/**
 * Creates the lock file of the embedded database, or throws when a live process created it. PGlite
 * does not guard its files, and a second process writing them loses the changes of one of them.
 */
function lockEmbedded(dataDir: string): () => void {
  const lockFile = embeddedLockPath(dataDir);
  for (;;) {
    try {
      writeFileSync(lockFile, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });

      return () => rmSync(lockFile, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = lockHolder(lockFile);
    if (holder !== undefined) {
      throw new Error(
        `the embedded database in ${dataDir} is already open in process ${holder}, and only one idp server can use a data folder`,
      );
    }
    // Left behind by a process that has ended.
    rmSync(lockFile, { force: true });
  }
}

/** Connects to Postgres, or opens the embedded PGlite database in `dataDir` when no URL is given. */
export async function openDatabase(options: {
  databaseUrl?: string;
  dataDir: string;
}): Promise<Database> {
  if (options.databaseUrl) {
    const database = new PostgresDatabase(options.databaseUrl);
    try {
      await database.query('SELECT 1');
    } catch (error) {
      await database.close();
      throw error;
    }

    return database;
  }
  const directory = path.join(options.dataDir, 'pglite');
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  const release = lockEmbedded(options.dataDir);
  try {
    return new EmbeddedDatabase(await PGlite.create(directory), release);
  } catch (error) {
    release();
    throw error;
  }
}

/** Counts of the connection pool, for metrics; undefined for the embedded database. */
export function poolCounts(
  database: Database,
): { total: number; idle: number; waiting: number } | undefined {
  if (!(database instanceof PostgresDatabase)) return undefined;
  const { pool } = database;

  return { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
}

/** Opens an in-memory PGlite database, for tests. */
export async function openMemoryDatabase(): Promise<Database> {
  return new EmbeddedDatabase(await PGlite.create());
}

/** Path of the file that names the process that has the embedded database open. */
function embeddedLockPath(dataDir: string): string {
  return path.join(dataDir, 'pglite.lock');
}

/** Path of the Unix socket through which a serving embedded node shares its PGlite database. */
export function embeddedSocketPath(dataDir: string): string {
  return path.join(dataDir, '.s.PGSQL.5432');
}

/**
 * Shares the embedded database of a running server over a Unix socket in the data folder, so that
 * `idp` commands run while it serves reach the same database. PGlite allows only one process to
 * open its files.
 */
export async function shareEmbeddedDatabase(
  database: Database,
  dataDir: string,
): Promise<{ stop(): Promise<void> }> {
  if (!(database instanceof EmbeddedDatabase)) throw new Error('not an embedded database');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  const socketPath = embeddedSocketPath(dataDir);
  rmSync(socketPath, { force: true });
  // The server queues each connection's statements one by one on PGlite's single session, so a
  // second connection's statements would run inside the first one's transaction.
  const server = new PGLiteSocketServer({ db: database.db, path: socketPath, maxConnections: 1 });
  await server.start();

  return {
    stop: async () => {
      await server.stop();
      rmSync(socketPath, { force: true });
    },
  };
}

/** How long a command waits for a serving node's socket before it gives up. */
const COMMAND_CONNECT_MS = 30_000;

/**
 * Opens the embedded database for a command: through the socket of a running server when there is
 * one, otherwise directly.
 */
export async function openEmbeddedForCommand(dataDir: string): Promise<Database> {
  const lockFile = embeddedLockPath(dataDir);
  // The server takes one command at a time, so a busy one gets more tries.
  const deadline = Date.now() + COMMAND_CONNECT_MS;
  while (existsSync(embeddedSocketPath(dataDir))) {
    const database = new PostgresDatabase(
      `postgres://postgres@localhost/postgres?host=${encodeURIComponent(dataDir)}`,
      1,
    );
    try {
      await database.query('SELECT 1');

      return database;
    } catch (error) {
      await database.close();
      const holder = lockHolder(lockFile);
      if (holder === undefined) {
        // A socket left behind by a server that stopped without cleaning up.
        rmSync(embeddedSocketPath(dataDir), { force: true });
        break;
      }
      if (Date.now() >= deadline) {
        throw new Error(
          `the socket of the server (process ${holder}) in ${dataDir} timed out or failed: ${(error as Error).message}`,
          { cause: error },
        );
      }
      await sleep(100 + Math.random() * 200);
    }
  }

  return openDatabase({ dataDir });
}
