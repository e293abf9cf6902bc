import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AccountStore } from '../src/accounts/store.ts';
import { type Database, openDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { MfaStore } from '../src/mfa/store.ts';
import { generateSecret } from '../src/mfa/totp.ts';
import { Encryptor } from '../src/security/encryption.ts';
import { SettingsStore } from '../src/settings.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';
import { referenceTotp } from './support/totp.ts';

const NOW = 1_700_000_015_000; // the middle of a 30-second step
const STEP = Math.floor(NOW / 30_000);
const PASSWORD = 'correct horse battery staple';

describe('MFA store on Postgres', () => {
  let testDatabase: TestDatabase;
  let first: Database;
  let second: Database;
  let accounts: AccountStore;
  let clock = NOW;
  const encryptor = new Encryptor([randomBytes(32)]);
  // Two stores with their own connection pools stand for two idp nodes sharing one database.
  let nodeA: MfaStore;
  let nodeB: MfaStore;

  before(async () => {
    testDatabase = await createTestDatabase();
    first = await openDatabase({ databaseUrl: testDatabase.url, dataDir: '.' });
    second = await openDatabase({ databaseUrl: testDatabase.url, dataDir: '.' });
    await migrate(first);
    accounts = new AccountStore(first);
    nodeA = new MfaStore(first, encryptor, () => clock);
    nodeB = new MfaStore(second, encryptor, () => clock);
  });

  after(async () => {
    await first?.close();
    await second?.close();
    await testDatabase?.drop();
  });

  let userCount = 0;
  async function enrolledUser(acceptedStep = STEP - 5) {
    const account = await accounts.create({ username: `user${++userCount}`, password: PASSWORD });
    const secret = generateSecret();
    const codes = await nodeA.enrol(account.id, secret, acceptedStep);

    return { id: account.id, secret, codes };
  }

  const codeAt = (secret: Buffer, offsetSeconds: number) =>
    referenceTotp(secret, NOW / 1000 + offsetSeconds);

  it('accepts exactly -30, 0 and +30 seconds', async () => {
    const accepted: number[] = [];
    for (const offset of [-90, -60, -30, 0, 30, 60, 90]) {
      // A fresh credential per offset, so an accepted step cannot hide the next check.
      const user = await enrolledUser();
      if ((await nodeA.verifyTotp(user.id, codeAt(user.secret, offset))) === 'accepted') {
        accepted.push(offset);
      }
    }
    assert.deepEqual(accepted, [-30, 0, 30]);
  });

  it('a code works once on the same node', async () => {
    const user = await enrolledUser();
    const code = codeAt(user.secret, 0);
    assert.equal(await nodeA.verifyTotp(user.id, code), 'accepted');
    assert.equal(await nodeA.verifyTotp(user.id, code), 'replayed');
  });

  it('a code works once across two nodes', async () => {
    const user = await enrolledUser();
    const code = codeAt(user.secret, 0);
    assert.equal(await nodeA.verifyTotp(user.id, code), 'accepted');
    assert.equal(await nodeB.verifyTotp(user.id, code), 'replayed');
  });

  it('parallel checks on two nodes accept once', async () => {
    const user = await enrolledUser();
    const code = codeAt(user.secret, 0);
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? nodeA : nodeB).verifyTotp(user.id, code)),
    );
    assert.equal(results.filter((result) => result === 'accepted').length, 1);
    assert.equal(results.filter((result) => result === 'replayed').length, 9);
  });

  it('an earlier step after a later one is rejected', async () => {
    const user = await enrolledUser();
    assert.equal(await nodeA.verifyTotp(user.id, codeAt(user.secret, 30)), 'accepted');
    assert.equal(await nodeB.verifyTotp(user.id, codeAt(user.secret, 0)), 'replayed');
    assert.equal(await nodeA.verifyTotp(user.id, codeAt(user.secret, -30)), 'replayed');
  });

  it('the confirmation step cannot be reused', async () => {
    const user = await enrolledUser(STEP);
    assert.equal(await nodeA.verifyTotp(user.id, codeAt(user.secret, 0)), 'replayed');
    assert.equal(await nodeA.verifyTotp(user.id, codeAt(user.secret, 30)), 'accepted');
  });

  it('wrong and malformed codes are wrong', async () => {
    const user = await enrolledUser();
    const right = codeAt(user.secret, 0);
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');
    assert.equal(await nodeA.verifyTotp(user.id, wrong), 'wrong');
    assert.equal(await nodeA.verifyTotp(user.id, ''), 'wrong');
    assert.equal(await nodeA.verifyTotp(user.id, 'abcdef'), 'wrong');
    assert.equal(await nodeA.verifyTotp(user.id, `${right}0`), 'wrong');
    assert.equal(await nodeA.verifyTotp(user.id, right.replace(/(\d{3})/, '$1 ')), 'accepted');
  });

  it('an account without TOTP is not enrolled', async () => {
    const account = await accounts.create({ username: 'plain', password: PASSWORD });
    assert.equal(await nodeA.verifyTotp(account.id, '123456'), 'not_enrolled');
    assert.deepEqual(await nodeA.status(account.id), { enrolled: false, recoveryCodesLeft: 0 });
  });

  it('stores the secret encrypted', async () => {
    const user = await enrolledUser();
    const rows = await first.query<{ secret_ciphertext: string }>(
      'SELECT secret_ciphertext FROM totp_credentials WHERE account_id = $1',
      [user.id],
    );
    const stored = rows[0]!.secret_ciphertext;
    assert.match(stored, /^v1\.[\w-]{8}\./, 'names the key id');
    assert.ok(!stored.includes(user.secret.toString('base64url')));
    assert.ok(!stored.includes(user.secret.toString('hex')));
    assert.deepEqual(encryptor.decrypt(stored, `totp:${user.id}`), user.secret);
    assert.throws(() => encryptor.decrypt(stored, 'totp:someone-else'));
  });

  it('a second enrolment conflicts', async () => {
    const user = await enrolledUser();
    await assert.rejects(nodeB.enrol(user.id, generateSecret(), STEP), { code: 'conflict' });
    assert.equal(await nodeA.verifyTotp(user.id, codeAt(user.secret, 0)), 'accepted');
  });

  it('recovery codes work once each', async () => {
    const user = await enrolledUser();
    assert.equal(user.codes.length, 10);
    assert.equal(new Set(user.codes).size, 10);
    assert.equal((await nodeA.status(user.id)).recoveryCodesLeft, 10);
    const [code, other] = user.codes as [string, string];
    assert.equal(await nodeA.useRecoveryCode(user.id, code), 9);
    assert.equal(await nodeB.useRecoveryCode(user.id, code), undefined);
    assert.equal(await nodeB.useRecoveryCode(user.id, other.toUpperCase().replaceAll('-', ' ')), 8);
    assert.equal(await nodeA.useRecoveryCode(user.id, 'aaaa-bbbb-cccc-dddd'), undefined);
    assert.equal(await nodeA.useRecoveryCode(user.id, 'not a code'), undefined);
    assert.equal((await nodeA.status(user.id)).recoveryCodesLeft, 8);
  });

  it('parallel use of one recovery code succeeds once', async () => {
    const user = await enrolledUser();
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        (i % 2 ? nodeA : nodeB).useRecoveryCode(user.id, user.codes[0]!),
      ),
    );
    assert.equal(results.filter((left) => left !== undefined).length, 1);
  });

  it('recovery codes are stored hashed', async () => {
    const user = await enrolledUser();
    const rows = await first.query<{ code_hash: string }>(
      'SELECT code_hash FROM recovery_codes WHERE account_id = $1',
      [user.id],
    );
    assert.equal(rows.length, 10);
    const stored = rows.map((row) => row.code_hash).join(' ');
    for (const code of user.codes) {
      assert.ok(!stored.includes(code.replaceAll('-', '')), 'plain code stored');
    }
  });

  it('regeneration invalidates the old set', async () => {
    const user = await enrolledUser();
    const fresh = await nodeB.regenerateRecoveryCodes(user.id);
    assert.equal(fresh.length, 10);
    for (const code of user.codes) {
      assert.equal(await nodeA.useRecoveryCode(user.id, code), undefined, 'old code works');
    }
    assert.equal(await nodeA.useRecoveryCode(user.id, fresh[3]!), 9);
  });

  it('replace keeps recovery codes, old secret fails', async () => {
    const user = await enrolledUser();
    const secret = generateSecret();
    await nodeA.replace(user.id, secret, STEP - 3);
    assert.equal(await nodeA.verifyTotp(user.id, codeAt(user.secret, 0)), 'wrong');
    assert.equal(await nodeA.verifyTotp(user.id, codeAt(secret, 0)), 'accepted');
    assert.equal((await nodeA.status(user.id)).recoveryCodesLeft, 10);
  });

  it('reset removes TOTP and recovery codes', async () => {
    const user = await enrolledUser();
    assert.equal(await nodeA.reset(user.id), true);
    assert.deepEqual(await nodeA.status(user.id), { enrolled: false, recoveryCodesLeft: 0 });
    assert.equal(await nodeA.useRecoveryCode(user.id, user.codes[0]!), undefined);
    assert.equal(await nodeA.reset(user.id), false);
  });

  it('settings default off and record who', async () => {
    const settings = new SettingsStore(first);
    assert.equal(await settings.get('require-2fa'), false);
    await settings.set('require-2fa', true, 'ops-user');
    assert.equal(await new SettingsStore(second).get('require-2fa'), true);
    const [listed] = await settings.list();
    assert.equal(listed?.name, 'require-2fa');
    assert.equal(listed?.value, true);
    assert.equal(listed?.updatedBy, 'ops-user');
    await settings.set('require-2fa', false, 'ops-user');
    assert.equal(await settings.get('require-2fa'), false);
  });

  it('clock moves: step after the last is accepted', async () => {
    const user = await enrolledUser();
    assert.equal(await nodeA.verifyTotp(user.id, codeAt(user.secret, 0)), 'accepted');
    clock = NOW + 60_000;
    try {
      assert.equal(await nodeA.verifyTotp(user.id, codeAt(user.secret, 60)), 'accepted');
      assert.equal(await nodeA.verifyTotp(user.id, codeAt(user.secret, 0)), 'wrong');
    } finally {
      clock = NOW;
    }
  });
});
