import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** Server that tests create their databases on; the machine's Postgres unless TEST_DATABASE_URL says otherwise. */
export const TEST_DATABASE_URL =
  process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/**
 * Creates an empty database of this test run's own. Fails with a clear message when Postgres does
 * not answer: these tests never skip.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `idp_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({
    connectionString: TEST_DATABASE_URL,
    connectionTimeoutMillis: 5000,
  });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(
      `Postgres at ${TEST_DATABASE_URL} is unreachable (${(error as Error).message}). Start it or set TEST_DATABASE_URL.`,
      { cause: error },
    );
  }
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;

  return {
    url: url.href,
    name,
    async drop() {
      const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await client.connect();
      try {
        // pg's pool.end() resolves before its connections have closed. A plain DROP waits for
        // them to go; FORCE would kill them and make their clients throw in the test process.
        await client.query(`DROP DATABASE IF EXISTS ${name}`);
      } catch (error) {
        if ((error as { code?: string }).code !== '55006') throw error;
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
