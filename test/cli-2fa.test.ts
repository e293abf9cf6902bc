import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { AccountStore } from '../src/accounts/store.ts';
import { type Database, openDatabase } from '../src/db/database.ts';
import { MfaStore } from '../src/mfa/store.ts';
import { generateSecret } from '../src/mfa/totp.ts';
import { ClientStore } from '../src/oidc/clients.ts';
import { Encryptor } from '../src/security/encryption.ts';
import { SettingsStore } from '../src/settings.ts';
import { runIdp } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';
import { TEST_REDIS_URL } from './support/redis.ts';
import { referenceTotp } from './support/totp.ts';

describe('idp command line: 2FA', () => {
  let testDatabase: TestDatabase;
  let database: Database;
  const encryptionKey = randomBytes(32);
  let env: NodeJS.ProcessEnv;

  before(async () => {
    testDatabase = await createTestDatabase();
    env = {
      PATH: process.env['PATH'],
      HOME: process.env['HOME'],
      DATABASE_URL: testDatabase.url,
      IDP_ENCRYPTION_KEY: encryptionKey.toString('base64'),
    };
    await idp(['migrate']);
    database = await openDatabase({ databaseUrl: testDatabase.url, dataDir: '.' });
  });

  after(async () => {
    await database?.close();
    await testDatabase?.drop();
  });

  const idp = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    runIdp({ ...env, ...extraEnv }, args);

  it('settings set, get and list', async () => {
    assert.equal((await idp(['settings', 'get', 'require-2fa'])).stdout, 'off\n');
    const set = await idp(['settings', 'set', 'require-2fa', 'on']);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, 'require-2fa is now on\n');
    const logLine = JSON.parse(set.stderr.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(logLine['msg'], 'setting changed');
    assert.equal(logLine['changedBy'], userInfo().username);
    assert.equal(logLine['value'], true);
    assert.equal(await new SettingsStore(database).get('require-2fa'), true);
    assert.equal((await idp(['settings', 'get', 'require-2fa'])).stdout, 'on\n');

    const listed = await idp(['settings', 'list', '--json']);
    const entry = JSON.parse(listed.stdout) as Record<string, unknown>;
    assert.equal(entry['name'], 'require-2fa');
    assert.equal(entry['value'], true);
    assert.equal(entry['updatedBy'], userInfo().username);

    assert.equal((await idp(['settings', 'set', 'require-2fa', 'off'])).code, 0);
    assert.equal(await new SettingsStore(database).get('require-2fa'), false);
  });

  it('settings reject bad input in one line', async () => {
    for (const args of [
      ['settings', 'set', 'require-2fa', 'maybe'],
      ['settings', 'set', 'no-such-setting', 'on'],
      ['settings', 'get', 'no-such-setting'],
    ]) {
      const result = await idp(args);
      assert.equal(result.code, 1, args.join(' '));
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.match(result.stderr, /^idp: /);
    }
  });

  it('clients update changes the 2FA flag', async () => {
    const created = await idp([
      'clients',
      'create',
      '--client-id',
      'case-app',
      '--redirect-uri',
      'https://app.example.test/callback',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const store = new ClientStore(database, new Encryptor([encryptionKey]));
    const secretBefore = (await store.findMetadata('case-app'))?.['client_secret'];

    const on = await idp(['clients', 'update', 'case-app', '--require-2fa', '--name', 'Case']);
    assert.equal(on.code, 0, on.stderr);
    let client = await store.get('case-app');
    assert.equal(client?.require2fa, true);
    assert.equal(client?.name, 'Case');
    assert.deepEqual(client?.redirectUris, ['https://app.example.test/callback'], 'kept');
    assert.equal((await store.findMetadata('case-app'))?.['client_secret'], secretBefore);
    assert.equal((await store.findMetadata('case-app'))?.['idp_require_2fa'], true);

    const off = await idp(['clients', 'update', 'case-app', '--no-require-2fa']);
    assert.equal(off.code, 0, off.stderr);
    client = await store.get('case-app');
    assert.equal(client?.require2fa, false);
    assert.equal(client?.name, 'Case', 'kept');

    const moved = await idp([
      'clients',
      'update',
      'case-app',
      '--redirect-uri',
      'https://app.example.test/a',
      '--redirect-uri',
      'https://app.example.test/b',
    ]);
    assert.equal(moved.code, 0, moved.stderr);
    assert.deepEqual((await store.get('case-app'))?.redirectUris, [
      'https://app.example.test/a',
      'https://app.example.test/b',
    ]);

    const bad = await idp(['clients', 'update', 'case-app', '--redirect-uri', 'http://evil.test/']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /must use https/);
    const missing = await idp(['clients', 'update', 'nope', '--require-2fa']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, "idp: client 'nope' not found\n");
    const reserved = await idp([
      'clients',
      'create',
      '--client-id',
      'idp-account',
      '--redirect-uri',
      'https://x.test/cb',
    ]);
    assert.equal(reserved.code, 1);
    assert.match(reserved.stderr, /reserved/);
  });

  it('users reset-2fa removes TOTP', async () => {
    const accounts = new AccountStore(database);
    const mfa = new MfaStore(database, new Encryptor([encryptionKey]));
    const account = await accounts.create({ username: 'Dana', password: 'long enough pass' });
    await mfa.enrol(account.id, generateSecret(), 1);

    const reset = await idp(['users', 'reset-2fa', 'dana'], { REDIS_URL: TEST_REDIS_URL });
    assert.equal(reset.code, 0, reset.stderr);
    assert.match(reset.stdout, /two-step sign-in of Dana removed/);
    assert.match(reset.stdout, /ended 0 session\(s\)/);
    assert.deepEqual(await mfa.status(account.id), { enrolled: false, recoveryCodesLeft: 0 });

    const again = await idp(['users', 'reset-2fa', 'dana']);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /Dana had no two-step sign-in/);
    assert.match(again.stderr, /REDIS_URL is not set/);

    const unknown = await idp(['users', 'reset-2fa', 'nobody']);
    assert.equal(unknown.code, 1);
    assert.equal(unknown.stderr, "idp: user 'nobody' not found\n");
  });

  it('keys reencrypt moves TOTP secrets', async () => {
    const accounts = new AccountStore(database);
    const account = await accounts.create({ username: 'Erin', password: 'long enough pass' });
    const secret = generateSecret();
    await new MfaStore(database, new Encryptor([encryptionKey])).enrol(account.id, secret, 1);
    const newKey = randomBytes(32);
    const both = `${newKey.toString('base64')},${encryptionKey.toString('base64')}`;

    const result = await idp(['keys', 'reencrypt'], { IDP_ENCRYPTION_KEY: both });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /TOTP secrets: 1 of 1 re-encrypted/);

    const onlyNew = new MfaStore(database, new Encryptor([newKey]));
    const code = referenceTotp(secret, Date.now() / 1000);
    assert.equal(await onlyNew.verifyTotp(account.id, code), 'accepted');
  });
});
