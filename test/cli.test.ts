import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { type CommandResult, IDP_BIN, runIdp } from './support/cli.ts';
import { createTestDatabase, type TestDatabase } from './support/postgres.ts';

const PASSWORD = 'correct horse battery staple';

describe('idp command line', () => {
  let testDatabase: TestDatabase;
  let env: NodeJS.ProcessEnv;

  /** Runs `idp` with the test database and optional standard input. */
  const idp = (args: string[], input = ''): Promise<CommandResult> => runIdp(env, args, input);

  /** Checks a failure: exit code 1 and exactly one line on standard error. */
  const assertFails = (result: CommandResult, message: RegExp) => {
    assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
    assert.ok(!result.stderr.includes('    at '), 'no stack trace');
  };

  before(async () => {
    testDatabase = await createTestDatabase();
    env = {
      PATH: process.env['PATH'],
      DATABASE_URL: testDatabase.url,
      IDP_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    };
  });

  after(async () => {
    await testDatabase?.drop();
  });

  it('migrate applies, then reports up to date', async () => {
    const first = await idp(['migrate']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^applied \d+ migration\(s\): 001_initial\.sql, .*003_audit\.sql/);
    const second = await idp(['migrate']);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, 'database is up to date\n');
  });

  it('users create reads the password from stdin', async () => {
    const result = await idp(
      [
        'users',
        'create',
        'Alice',
        '--email',
        'alice@example.org',
        '--name',
        'Alice Example',
        '--password-stdin',
      ],
      `${PASSWORD}\n`,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^created user Alice \([0-9a-f-]{36}\)\n$/);
    assert.ok(!result.stdout.includes(PASSWORD));
  });

  it('users create errors: duplicate, empty password, bad email', async () => {
    assertFails(
      await idp(['users', 'create', 'ALICE', '--password-stdin'], PASSWORD),
      /^idp: user 'ALICE' already exists$/m,
    );
    assertFails(
      await idp(['users', 'create', 'bob', '--password-stdin'], ''),
      /^idp: Password on standard input is empty$/m,
    );
    assertFails(
      await idp(['users', 'create', 'bob', '--password-stdin'], 'short'),
      /at least 8 characters/,
    );
    assertFails(
      await idp(['users', 'create', 'bob', '--email', 'nope', '--password-stdin'], PASSWORD),
      /email 'nope' is not a valid address/,
    );
    assertFails(await idp(['users', 'create', 'bob']), /--password-stdin/);
    assertFails(
      await idp(['users', 'create', 'bob', '--password-stdin', '--password', PASSWORD]),
      /unknown option '--password'/,
    );
  });

  it('users list, disable, enable, set-password', async () => {
    const disabled = await idp(['users', 'disable', 'alice']);
    assert.equal(disabled.stdout, 'user Alice disabled\n');
    const json = await idp(['users', 'list', '--json']);
    const users = json.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.equal(users.length, 1);
    assert.equal(users[0]?.['username'], 'Alice');
    assert.equal(users[0]?.['disabled'], true);
    assert.equal(users[0]?.['email'], 'alice@example.org');
    assert.equal(JSON.stringify(users).includes('argon2'), false, 'no password hash in output');

    assert.equal((await idp(['users', 'enable', 'alice'])).stdout, 'user Alice enabled\n');
    const table = await idp(['users', 'list']);
    assert.match(
      table.stdout,
      /^USERNAME +ID +EMAIL +NAME +STATUS\nAlice +[0-9a-f-]{36} +alice@example.org +Alice Example +active\n$/,
    );

    const changed = await idp(
      ['users', 'set-password', 'alice', '--password-stdin'],
      'a new long passphrase\n',
    );
    assert.equal(changed.code, 0, changed.stderr);
    assert.equal(changed.stdout, 'password of Alice changed\n');
    assertFails(await idp(['users', 'disable', 'nobody']), /^idp: user 'nobody' not found$/m);
    assertFails(await idp(['users', 'set-password', 'alice', '--password-stdin'], ''), /is empty/);
  });

  it('clients create with a generated secret, shown once', async () => {
    const result = await idp([
      'clients',
      'create',
      '--client-id',
      'case-app',
      '--name',
      'Case Manager',
      '--redirect-uri',
      'https://app.example.org/callback',
      '--redirect-uri',
      'http://localhost:3000/callback',
      '--post-logout-redirect-uri',
      'https://app.example.org/',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^created client case-app\nclient secret \(shown only now.*\): [A-Za-z0-9_-]{43}\n$/,
    );
    const list = await idp(['clients', 'list', '--json']);
    assert.ok(!list.stdout.includes(result.stdout.split(': ')[1]!.trim()), 'secret listed');
    const client = JSON.parse(list.stdout) as Record<string, unknown>;
    assert.deepEqual(client['redirectUris'], [
      'https://app.example.org/callback',
      'http://localhost:3000/callback',
    ]);
    assert.equal(client['isPublic'], false);
  });

  it('clients create: public, secret from stdin, flags', async () => {
    const pub = await idp([
      'clients',
      'create',
      '--client-id',
      'spa',
      '--public',
      '--redirect-uri',
      'https://spa.example.org/cb',
    ]);
    assert.equal(pub.stdout, 'created client spa\n');
    const secret = randomBytes(32).toString('hex');
    const own = await idp(
      [
        'clients',
        'create',
        '--client-id',
        'partner',
        '--client-secret-stdin',
        '--consent',
        '--require-2fa',
        '--backchannel-logout-uri',
        'https://partner.example.org/logout',
        '--redirect-uri',
        'https://partner.example.org/cb',
      ],
      secret,
    );
    assert.equal(own.stdout, 'created client partner\n');
    const table = await idp(['clients', 'list']);
    assert.match(
      table.stdout,
      /partner +confidential +https:\/\/partner.example.org\/cb +required +asked/,
    );
    assert.match(table.stdout, /spa +public/);
  });

  it('clients create errors: invalid URI, duplicate, short secret', async () => {
    const cases: [string[], string, RegExp][] = [
      [
        ['--client-id', 'x1', '--redirect-uri', 'not a uri'],
        '',
        /--redirect-uri 'not a uri' is not an absolute URI/,
      ],
      [['--client-id', 'x2', '--redirect-uri', 'http://app.example.org/cb'], '', /must use https/],
      [
        ['--client-id', 'x3', '--redirect-uri', 'https://app.example.org/cb#frag'],
        '',
        /must not have a fragment/,
      ],
      [
        ['--client-id', 'bad id', '--redirect-uri', 'https://a.example.org/cb'],
        '',
        /client id 'bad id' must be/,
      ],
      [
        ['--client-id', 'case-app', '--redirect-uri', 'https://a.example.org/cb'],
        '',
        /^idp: client 'case-app' already exists$/m,
      ],
      [
        [
          '--client-id',
          'x4',
          '--client-secret-stdin',
          '--redirect-uri',
          'https://a.example.org/cb',
        ],
        'short',
        /at least 32/,
      ],
      [
        [
          '--client-id',
          'x5',
          '--public',
          '--client-secret-stdin',
          '--redirect-uri',
          'https://a.example.org/cb',
        ],
        'x'.repeat(40),
        /public client has no secret/,
      ],
      [['--client-id', 'x6'], '', /required option '--redirect-uri/],
    ];
    for (const [args, input, message] of cases) {
      assertFails(await idp(['clients', 'create', ...args], input), message);
    }
    const list = await idp(['clients', 'list', '--json']);
    assert.ok(!/"clientId":"x\d"/.test(list.stdout), 'a rejected client was stored');
  });

  it('clients delete', async () => {
    assert.equal((await idp(['clients', 'delete', 'spa'])).stdout, 'deleted client spa\n');
    assertFails(await idp(['clients', 'delete', 'spa']), /^idp: client 'spa' not found$/m);
  });

  it('every command has --help', async () => {
    const commands = [
      [],
      ['serve'],
      ['migrate'],
      ['users'],
      ['users', 'create'],
      ['users', 'set-password'],
      ['users', 'disable'],
      ['users', 'enable'],
      ['users', 'list'],
      ['clients'],
      ['clients', 'create'],
      ['clients', 'list'],
      ['clients', 'delete'],
    ];
    for (const command of commands) {
      const result = await idp([...command, '--help']);
      assert.equal(result.code, 0, `${command.join(' ')}: ${result.stderr}`);
      assert.match(result.stdout, /^Usage: idp/, command.join(' '));
    }
  });

  it('a configuration problem is reported plainly', async () => {
    const saved = env;
    env = { ...env, IDP_ENCRYPTION_KEY: 'too-short' };
    const result = await idp(['users', 'list']);
    env = saved;
    assert.equal(result.code, 1);
    assert.match(
      result.stderr,
      /^idp: invalid configuration:\n {2}IDP_ENCRYPTION_KEY must be a 32-byte key/,
    );
  });

  it('output into a closed pipe ends quietly', async () => {
    await idp(['users', 'create', 'piped', '--password-stdin'], PASSWORD);
    // The reader is gone before the command writes, as after `| head -1` on a long list.
    const child = spawn(process.execPath, [IDP_BIN, 'users', 'list', '--json'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });
});
