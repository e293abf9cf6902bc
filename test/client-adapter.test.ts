import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type Database, openDatabase, type Queryable } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { CLIENT_CACHE_SECONDS, ClientAdapter } from '../src/oidc/client-adapter.ts';
import { ClientStore } from '../src/oidc/clients.ts';
import { Encryptor } from '../src/security/encryption.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';

describe('client adapter cache', () => {
  let testDatabase: TestDatabase;
  let database: Database;
  let clients: ClientStore;
  let queries = 0;
  let clock = 1_000_000;

  before(async () => {
    testDatabase = await createTestDatabase();
    database = await openDatabase({ databaseUrl: testDatabase.url, dataDir: '/nonexistent' });
    await migrate(database);
    const counting: Queryable = {
      query: (sql, params) => {
        queries += 1;

        return database.query(sql, params);
      },
    };
    clients = new ClientStore(counting, new Encryptor([randomBytes(32)]));
  });

  after(async () => {
    await database?.close();
    await testDatabase?.drop();
  });

  const register = (clientId: string) =>
    clients.create({
      clientId,
      redirectUris: ['https://app.example.test/cb'],
      clientSecret: 's'.repeat(40),
    });

  it('serves a found client from memory until the TTL ends', async () => {
    await register('cached-app');
    const adapter = new ClientAdapter(clients, () => clock);
    const first = await adapter.find('cached-app');
    assert.equal(first?.['client_secret'], 's'.repeat(40));
    const before = queries;
    await adapter.find('cached-app');
    assert.equal(queries, before);

    await clients.delete('cached-app');
    clock += CLIENT_CACHE_SECONDS * 1000 - 1;
    assert.ok(await adapter.find('cached-app'), 'still cached just before the TTL');
    clock += 1;
    assert.equal(await adapter.find('cached-app'), undefined, 'gone once the TTL has passed');
  });

  it('does not remember a miss', async () => {
    const adapter = new ClientAdapter(clients, () => clock);
    assert.equal(await adapter.find('late-app'), undefined);
    await register('late-app');
    assert.ok(await adapter.find('late-app'));
  });

  it('shares one query between concurrent lookups', async () => {
    await register('busy-app');
    const adapter = new ClientAdapter(clients, () => clock);
    const before = queries;
    const found = await Promise.all(Array.from({ length: 10 }, () => adapter.find('busy-app')));
    assert.equal(queries - before, 1);
    assert.ok(found.every((metadata) => metadata?.['client_id'] === 'busy-app'));
  });
});
