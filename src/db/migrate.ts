import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from './database.ts';

const migrationsDir = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** Advisory lock key shared by every idp node: "idp-migrate" as two 32-bit halves. */
export const MIGRATION_LOCK = [0x69647000, 0x6d696772] as const;

/**
 * Applies pending migrations in file-name order, each in its own transaction, under a session
 * advisory lock so that nodes starting at the same time apply each migration once. Returns the
 * names of the migrations applied.
 */
export async function migrate(database: Database, dir = migrationsDir): Promise<string[]> {
  const files = (await readdir(dir)).filter((name) => /^\d+_[\w-]+\.sql$/.test(name)).sort();

  return database.withSession(async (session) => {
    await session.query('SELECT pg_advisory_lock($1, $2)', [...MIGRATION_LOCK]);
    try {
      await session.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        name text PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      const rows = await session.query<{ name: string }>('SELECT name FROM schema_migrations');
      const applied = new Set(rows.map((row) => row.name));
      const pending = files.filter((name) => !applied.has(name));
      for (const name of pending) {
        const sql = await readFile(path.join(dir, name), 'utf8');
        await session.exec('BEGIN');
        try {
          await session.exec(sql);
          await session.query('INSERT INTO schema_migrations (name) VALUES ($1)', [name]);
          await session.exec('COMMIT');
        } catch (error) {
          await session.exec('ROLLBACK');
          throw new Error(`migration ${name} failed: ${(error as Error).message}`, {
            cause: error,
          });
        }
      }

      return pending;
    } finally {
      await session.query('SELECT pg_advisory_unlock($1, $2)', [...MIGRATION_LOCK]);
    }
  });
}
