import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { hash } from '@node-rs/argon2';
import { needsRehash, verifyPassword } from '../src/accounts/password.ts';
import { AccountStore } from '../src/accounts/store.ts';
import { canonicalUsername, usernameProblem } from '../src/accounts/username.ts';
import { type Database, openDatabase, openMemoryDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { AppError } from '../src/errors.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';

const PASSWORD = 'correct horse battery staple';

describe('canonicalUsername', () => {
  it('trims, normalises and folds case', () => {
    assert.equal(canonicalUsername('  Alice '), 'alice');
    assert.equal(canonicalUsername('ＡＬＩＣＥ'), 'alice');
    assert.equal(canonicalUsername('Straße'), 'strasse');
    assert.equal(canonicalUsername('ﬁnn'), 'finn');
    assert.equal(canonicalUsername('É'), canonicalUsername('e\u0301'));
  });
});

describe('usernameProblem', () => {
  it('rejects letters of mixed scripts', () => {
    // The first letter is Cyrillic, the rest Latin: on screen it reads as 'alice'.
    assert.match(usernameProblem('\u0430lice') ?? '', /mixes letters of Cyrillic and Latin/);
    assert.match(usernameProblem('\u0391dam') ?? '', /mixes letters of Greek and Latin/);
    assert.match(usernameProblem('bob\u0432') ?? '', /use the letters of one script/);
  });

  it('accepts one script and CJK mixes', () => {
    for (const name of [
      'alice',
      'José',
      '\u0430\u043b\u0438\u0441\u0430',
      'user.name-1',
      '\u5c71\u7530taro',
      '\u3059\u305a\u304dtaro',
      '\u30bf\u30ed\u30a6',
      '\uae40\ubbfc\uc218kim',
      'ＡＬＩＣＥ',
    ]) {
      assert.equal(usernameProblem(name), undefined, name);
    }
  });
});

const backends: [string, () => Promise<{ database: Database; cleanup: () => Promise<void> }>][] = [
  [
    'PGlite',
    async () => {
      const database = await openMemoryDatabase();

      return { database, cleanup: () => database.close() };
    },
  ],
  [
    'Postgres',
    async () => {
      const testDatabase: TestDatabase = await createTestDatabase();
      const database = await openDatabase({ databaseUrl: testDatabase.url, dataDir: '.' });

      return {
        database,
        cleanup: async () => {
          await database.close();
          await testDatabase.drop();
        },
      };
    },
  ],
];

for (const [backend, open] of backends) {
  describe(`AccountStore on ${backend}`, () => {
    let database: Database;
    let cleanup: () => Promise<void>;
    let accounts: AccountStore;

    before(async () => {
      ({ database, cleanup } = await open());
      await migrate(database);
      accounts = new AccountStore(database);
    });

    after(async () => {
      await cleanup?.();
    });

    it('creates and finds by canonical username', async () => {
      const created = await accounts.create({
        username: ' Carol ',
        password: PASSWORD,
        email: 'carol@example.org',
        name: 'Carol Example',
      });
      assert.match(created.id, /^[0-9a-f-]{36}$/);
      assert.equal(created.username, 'Carol');
      assert.ok(created.passwordHash.startsWith('$argon2id$v=19$m=65536,t=3,p=4$'));
      assert.ok(!created.passwordHash.includes(PASSWORD));
      for (const variant of ['carol', 'CAROL', ' carol', 'ＣＡＲＯＬ']) {
        const found = await accounts.findByUsername(variant);
        assert.equal(found?.id, created.id, variant);
      }
      assert.equal((await accounts.findById(created.id))?.email, 'carol@example.org');
      assert.equal(await accounts.findById('not-a-uuid'), undefined);
      assert.ok(await verifyPassword(created.passwordHash, PASSWORD));
      assert.ok(!(await verifyPassword(created.passwordHash, 'wrong')));
    });

    it('rejects a duplicate after normalisation', async () => {
      await accounts.create({ username: 'dave', password: PASSWORD });
      for (const duplicate of ['Dave', ' DAVE ', 'ＤＡＶＥ']) {
        await assert.rejects(
          accounts.create({ username: duplicate, password: PASSWORD }),
          (error) => {
            assert.ok(error instanceof AppError);
            assert.equal(error.code, 'conflict');
            assert.match(error.message, /already exists/);

            return true;
          },
        );
      }
    });

    it('rejects bad input with a reason', async () => {
      const cases: [Record<string, string>, RegExp][] = [
        [{ username: '   ', password: PASSWORD }, /username must not be empty/],
        [{ username: 'x'.repeat(129), password: PASSWORD }, /at most 128/],
        [{ username: 'tab\there', password: PASSWORD }, /control/],
        [{ username: '\u0430lice', password: PASSWORD }, /mixes letters of Cyrillic and Latin/],
        [{ username: 'erin', password: '' }, /password must not be empty/],
        [{ username: 'erin', password: 'short' }, /at least 8/],
        [{ username: 'erin', password: PASSWORD, email: 'not-an-email' }, /not a valid address/],
      ];
      for (const [input, message] of cases) {
        await assert.rejects(
          accounts.create(input as { username: string; password: string }),
          (error) =>
            error instanceof AppError &&
            error.code === 'invalid_input' &&
            message.test(error.message),
        );
      }
      assert.equal(await accounts.findByUsername('erin'), undefined);
    });

    it('sets passwords, disables and lists', async () => {
      const frank = await accounts.create({ username: 'frank', password: PASSWORD });
      await accounts.setPassword(frank.id, 'another long passphrase');
      const changed = await accounts.get('frank');
      assert.ok(await verifyPassword(changed.passwordHash, 'another long passphrase'));
      assert.ok(changed.passwordChangedAt >= frank.passwordChangedAt);
      await accounts.setDisabled(frank.id, true);
      assert.equal((await accounts.get('frank')).disabled, true);
      const names = (await accounts.list()).map((account) => account.username);
      assert.ok(names.includes('frank'));
      await assert.rejects(accounts.get('nobody'), /user 'nobody' not found/);
    });

    it('replaces an outdated hash only if unchanged', async () => {
      const grace = await accounts.create({ username: 'grace', password: PASSWORD });
      const weak = await hash(PASSWORD, {
        algorithm: 2,
        memoryCost: 19456,
        timeCost: 2,
        parallelism: 1,
      });
      assert.ok(needsRehash(weak));
      assert.ok(!needsRehash(grace.passwordHash));
      await accounts.replaceHash(grace.id, grace.passwordHash, weak);
      assert.equal((await accounts.get('grace')).passwordHash, weak);
      // A stale old hash no longer matches, so nothing is overwritten.
      await accounts.replaceHash(grace.id, grace.passwordHash, grace.passwordHash);
      assert.equal((await accounts.get('grace')).passwordHash, weak);
    });
  });
}
