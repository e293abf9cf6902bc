import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { type Database, openDatabase, openMemoryDatabase } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { AuditLog, GENESIS_HASH } from '../src/security/audit.ts';
import { type CommandResult, runIdp } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';

/** Edits a row as a database superuser would, with the append-only trigger out of the way. */
async function tamper(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query('ALTER TABLE audit_events DISABLE TRIGGER USER');
    await client.query(sql);
    await client.query('ALTER TABLE audit_events ENABLE TRIGGER USER');
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

describe('audit log on Postgres', () => {
  let testDatabase: TestDatabase;
  let database: Database;
  let audit: AuditLog;

  before(async () => {
    testDatabase = await createTestDatabase();
    database = await openDatabase({ databaseUrl: testDatabase.url, dataDir: '.' });
    await migrate(database);
    audit = new AuditLog(database);
  });

  after(async () => {
    await database?.close();
    await testDatabase?.drop();
  });

  it('an empty log verifies', async () => {
    assert.deepEqual(await audit.verify(), { ok: true, count: 0, lastHash: GENESIS_HASH });
  });

  it('record stores every field and chains the hash', async () => {
    const first = await audit.record({
      event: 'signin.failed',
      outcome: 'failure',
      accountId: '0B7E8F60-1C1B-4E4B-9E0B-2B8C3C1D2E3F',
      username: '  Alice ',
      clientId: 'case-app',
      ip: '203.0.113.7',
      userAgent: 'test-agent',
      requestId: 'req-12345678',
      detail: { step: 'password', reason: 'wrong_password' },
    });
    const second = await audit.record({ event: 'user.created', username: 'bob' });
    assert.equal(first.id, 1);
    assert.equal(first.prevHash, GENESIS_HASH);
    assert.equal(second.id, 2);
    assert.equal(second.prevHash, first.hash);
    assert.equal(second.outcome, 'success');

    const [row] = await audit.list({ event: 'signin.failed' });
    assert.ok(row);
    assert.equal(row.accountId, '0b7e8f60-1c1b-4e4b-9e0b-2b8c3c1d2e3f');
    assert.equal(row.username, 'Alice');
    assert.equal(row.clientId, 'case-app');
    assert.equal(row.ip, '203.0.113.7');
    assert.equal(row.userAgent, 'test-agent');
    assert.equal(row.requestId, 'req-12345678');
    assert.deepEqual(row.detail, { step: 'password', reason: 'wrong_password' });
    assert.equal(row.occurredAt.getTime(), first.occurredAt.getTime());
    assert.equal(row.hash, first.hash);
  });

  it('50 writers at once keep ids gapless and the chain whole', async () => {
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        audit.record({ event: 'signin.succeeded', username: `user${i}`, detail: { n: i } }),
      ),
    );
    const result = await audit.verify();
    assert.equal(result.ok, true);
    assert.equal(result.count, 52);
  });

  it('filters by event, group, user and time', async () => {
    assert.equal((await audit.list({ event: 'signin' })).length, 51);
    assert.equal((await audit.list({ event: 'user.created' })).length, 1);
    assert.equal((await audit.list({ user: 'ALICE' })).length, 1);
    assert.equal((await audit.list({ user: '0b7e8f60-1c1b-4e4b-9e0b-2b8c3c1d2e3f' })).length, 1);
    assert.equal((await audit.list({ since: new Date(Date.now() + 60_000) })).length, 0);
    const page = await audit.list({ afterId: 10, limit: 5 });
    assert.deepEqual(
      page.map((record) => record.id),
      [11, 12, 13, 14, 15],
    );
  });

  it('the application role cannot UPDATE, DELETE or TRUNCATE', async () => {
    for (const sql of [
      "UPDATE audit_events SET username = 'mallory' WHERE id = 1",
      'DELETE FROM audit_events WHERE id = 2',
      'TRUNCATE audit_events',
    ]) {
      await assert.rejects(database.query(sql), /audit_events is append only/, sql);
    }
    assert.equal((await audit.verify()).ok, true);
  });

  it('verify names the first row edited by hand', async () => {
    await tamper(testDatabase.url, "UPDATE audit_events SET username = 'mallory' WHERE id = 7");
    await tamper(testDatabase.url, "UPDATE audit_events SET ip = '192.0.2.1' WHERE id = 9");
    const result = await audit.verify();
    assert.equal(result.ok, false);
    assert.ok(!result.ok);
    assert.equal(result.badId, 7);
    assert.equal(result.count, 6);
    assert.match(result.problem, /changed/);
  });

  it('verify names a row removed by hand, and a row whose link was rewritten', async () => {
    const other = await createTestDatabase();
    const db = await openDatabase({ databaseUrl: other.url, dataDir: '.' });
    try {
      await migrate(db);
      const log = new AuditLog(db);
      for (let i = 0; i < 5; i++) await log.record({ event: 'user.created', username: `u${i}` });
      await tamper(other.url, 'DELETE FROM audit_events WHERE id = 3');
      const gap = await log.verify();
      assert.ok(!gap.ok);
      assert.equal(gap.badId, 3);
      assert.match(gap.problem, /missing/);

      // Renumbering and rehashing one row by hand still breaks the next row's link.
      await tamper(
        other.url,
        `UPDATE audit_events SET id = 3 WHERE id = 4;
         UPDATE audit_events SET prev_hash = (SELECT hash FROM audit_events WHERE id = 2) WHERE id = 3`,
      );
      const relinked = await log.verify();
      assert.ok(!relinked.ok);
      assert.equal(relinked.badId, 3);
    } finally {
      await db.close();
      await other.drop();
    }
  });
});

describe('audit log on PGlite', () => {
  it('writes, verifies and refuses changes', async () => {
    const database = await openMemoryDatabase();
    try {
      await migrate(database);
      const audit = new AuditLog(database);
      await audit.record({ event: 'user.created', username: 'alice', detail: { a: 1, b: 'x' } });
      await audit.record({ event: 'client.created', clientId: 'app' });
      assert.deepEqual((await audit.verify()).ok, true);
      await assert.rejects(database.query('DELETE FROM audit_events'), /append only/);
    } finally {
      await database.close();
    }
  });
});

describe('idp audit', () => {
  let testDatabase: TestDatabase;
  let env: NodeJS.ProcessEnv;
  const idp = (args: string[], input = ''): Promise<CommandResult> => runIdp(env, args, input);
  const PASSWORD = 'correct horse battery staple';

  before(async () => {
    testDatabase = await createTestDatabase();
    env = {
      PATH: process.env['PATH'],
      DATABASE_URL: testDatabase.url,
      IDP_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    };
    const steps: [string[], string][] = [
      [['users', 'create', 'Alice', '--password-stdin'], PASSWORD],
      [['users', 'create', 'bob', '--password-stdin'], PASSWORD],
      [['users', 'set-password', 'alice', '--password-stdin'], `${PASSWORD}!`],
      [['users', 'disable', 'bob'], ''],
      [['users', 'enable', 'bob'], ''],
      [['clients', 'create', '--client-id', 'app', '--redirect-uri', 'https://a.test/cb'], ''],
      [['clients', 'delete', 'app'], ''],
      [['keys', 'rotate'], ''],
    ];
    for (const [args, input] of steps) {
      const result = await idp(args, input);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    }
  });

  after(async () => {
    await testDatabase?.drop();
  });

  it('commands write their events; --json gives one object per line', async () => {
    const result = await idp(['audit', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      lines.map((line) => line['event']),
      [
        'user.created',
        'user.created',
        'password.changed',
        'user.disabled',
        'user.enabled',
        'client.created',
        'client.deleted',
        'signing_key.rotated',
        'signing_key.rotated',
      ],
    );
    assert.deepEqual(
      lines.slice(-2).map((line) => (line['detail'] as Record<string, unknown>)['alg']),
      ['RS256', 'ES256'],
    );
    for (const line of lines) {
      assert.match(String((line['detail'] as Record<string, unknown>)['actor']), /^cli:/);
      assert.match(String(line['time']), /^\d{4}-\d\d-\d\dT/);
      assert.match(String(line['hash']), /^[0-9a-f]{64}$/);
    }
    assert.equal(lines[2]?.['username'], 'Alice');
    assert.equal(lines[5]?.['clientId'], 'app');
    assert.ok(!result.stdout.includes(PASSWORD));
  });

  it('--user, --event and --since filter; text output is one line per event', async () => {
    const alice = await idp(['audit', '--user', 'ALICE']);
    assert.equal(alice.code, 0, alice.stderr);
    const lines = alice.stdout.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[1] ?? '', /password\.changed\s+success\s+user=Alice/);

    const users = await idp(['audit', '--event', 'user', '--json']);
    assert.equal(users.stdout.trim().split('\n').length, 4);
    const none = await idp(['audit', '--since', '1s', '--event', 'client.created']);
    assert.equal(none.code, 0);
    const recent = await idp(['audit', '--since', '1h', '--event', 'client.created']);
    assert.equal(recent.stdout.trim().split('\n').length, 1);
  });

  it('bad options fail with one line', async () => {
    for (const [args, message] of [
      [['audit', '--since', 'yesterday'], /--since must be a duration/],
      [['audit', '--event', 'nonsense'], /unknown event 'nonsense'/],
    ] as const) {
      const result = await idp([...args]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split('\n').length, 1);
    }
  });

  it('verify passes, then names the row edited by hand', async () => {
    const good = await idp(['audit', 'verify']);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /^audit log intact: 9 events, last hash [0-9a-f]{64}\n$/);

    await tamper(
      testDatabase.url,
      `UPDATE audit_events SET detail = '{"actor":"cli:someone-else"}' WHERE id = 4`,
    );
    const bad = await idp(['audit', 'verify']);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      'idp: audit log does not verify: event #4 has been changed (its hash does not match its content); the 3 events before it are intact\n',
    );
  });
});
