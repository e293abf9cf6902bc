import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Database, openDatabase, openMemoryDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';

async function schemaOf(database: Database): Promise<string> {
  const rows = await database.query<{ table_name: string; column_name: string; data_type: string }>(
    `SELECT table_name, column_name, data_type FROM information_schema.columns
     WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`,
  );

  return JSON.stringify(rows);
}

describe('migrate on Postgres', () => {
  let testDatabase: TestDatabase;
  let nodes: Database[] = [];

  before(async () => {
    testDatabase = await createTestDatabase();
    nodes = await Promise.all(
      [1, 2, 3].map(() => openDatabase({ databaseUrl: testDatabase.url, dataDir: '.' })),
    );
  });

  after(async () => {
    await Promise.all(nodes.map((node) => node.close()));
    await testDatabase?.drop();
  });

  it('three nodes at once apply each migration once', async () => {
    const results = await Promise.all(nodes.map((node) => migrate(node)));
    const applied = results.flat();
    assert.ok(applied.includes('001_initial.sql'));
    assert.equal(applied.length, new Set(applied).size, 'a migration ran twice');
    const rows = await nodes[0]!.query<{ name: string }>('SELECT name FROM schema_migrations');
    assert.equal(rows.length, new Set(applied).size);
  });

  it('a second run changes nothing', async () => {
    const before = await schemaOf(nodes[0]!);
    assert.deepEqual(await migrate(nodes[0]!), []);
    assert.equal(await schemaOf(nodes[0]!), before);
  });

  it('the lock is released after a run', async () => {
    const rows = await nodes[0]!.query<{ count: string }>(
      "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
    );
    assert.equal(Number(rows[0]?.count), 0);
  });
});

describe('migrate on PGlite', () => {
  it('applies the same migrations twice without change', async () => {
    const database = await openMemoryDatabase();
    try {
      const first = await migrate(database);
      assert.ok(first.includes('001_initial.sql'));
      const schema = await schemaOf(database);
      assert.deepEqual(await migrate(database), []);
      assert.equal(await schemaOf(database), schema);
    } finally {
      await database.close();
    }
  });
});
