import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AccessToken, KoaContextWithOIDC } from 'oidc-provider';
import { AccountStore } from '../src/accounts/store.ts';
import { type Database, openDatabase, type Queryable } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { ACCOUNT_CACHE_SECONDS, createFindAccount } from '../src/oidc/account.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';

describe('account lookup for tokens', () => {
  let testDatabase: TestDatabase;
  let database: Database;
  let accounts: AccountStore;
  let queries = 0;
  let clock = 1_000_000;
  const ctx = {} as KoaContextWithOIDC;
  // oidc-provider passes the token on token, refresh and userinfo requests, and none on
  // authorization requests. Only its presence matters here.
  const token = {} as AccessToken;

  before(async () => {
    testDatabase = await createTestDatabase();
    database = await openDatabase({ databaseUrl: testDatabase.url, dataDir: '/nonexistent' });
    await migrate(database);
    const counting: Queryable = {
      query: (sql, params, name) => {
        queries += 1;

        return database.query(sql, params, name);
      },
    };
    accounts = new AccountStore(counting);
  });

  after(async () => {
    await database?.close();
    await testDatabase?.drop();
  });

  const claimsOf = async (findAccount: ReturnType<typeof createFindAccount>, sub: string) =>
    (await findAccount(ctx, sub, token))?.claims('userinfo', 'openid profile email', {}, []);

  it('returns claims and hides disabled accounts', async () => {
    const account = await accounts.create({
      username: 'lookup-ana',
      password: 'a passphrase long enough',
      name: 'Ana Lookup',
      email: 'ana@example.org',
    });
    const findAccount = createFindAccount(accounts);
    assert.deepEqual(await claimsOf(findAccount, account.id), {
      sub: account.id,
      preferred_username: 'lookup-ana',
      name: 'Ana Lookup',
      email: 'ana@example.org',
    });

    await accounts.setDisabled(account.id, true);
    assert.equal(await findAccount(ctx, account.id), undefined);
    assert.equal(await findAccount(ctx, 'not-a-uuid'), undefined);
  });

  it('keeps an account until the TTL ends', async () => {
    const account = await accounts.create({
      username: 'lookup-ben',
      password: 'a passphrase long enough',
    });
    const findAccount = createFindAccount(accounts, {
      cacheSeconds: ACCOUNT_CACHE_SECONDS,
      now: () => clock,
    });
    assert.equal((await claimsOf(findAccount, account.id))?.['preferred_username'], 'lookup-ben');
    const before = queries;
    await findAccount(ctx, account.id, token);
    await findAccount(ctx, account.id, token);
    assert.equal(queries, before, 'served from memory');

    await accounts.setDisabled(account.id, true);
    assert.equal(await findAccount(ctx, account.id), undefined, 'read fresh without a token');
    clock += ACCOUNT_CACHE_SECONDS * 1000 - 1;
    assert.ok(await findAccount(ctx, account.id, token), 'kept just before the TTL ends');
    clock += 1;
    assert.equal(await findAccount(ctx, account.id, token), undefined, 'disabled after the TTL');
  });

  it('does not keep a miss', async () => {
    const findAccount = createFindAccount(accounts, {
      cacheSeconds: ACCOUNT_CACHE_SECONDS,
      now: () => clock,
    });
    const missing = '00000000-0000-4000-8000-000000000000';
    assert.equal(await findAccount(ctx, missing, token), undefined);
    const before = queries;
    assert.equal(await findAccount(ctx, missing, token), undefined);
    assert.equal(queries, before + 1, 'a miss is read again');
  });
});
