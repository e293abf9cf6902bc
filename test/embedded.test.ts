import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as client from 'openid-client';
import { Agent, fetch } from 'undici';
import { TestBrowser } from './support/browser.ts';
import { IDP_BIN, runIdp } from './support/cli.ts';
import { freePort, TEST_PASSWORD, type TestIdp } from './support/idp.ts';
import { discoverRp, signInAndExchange } from './support/rp.ts';

/** Environment of a newcomer's machine: no database, Redis, keys or certificate configured. */
function embeddedEnv(dataDir: string, port: number): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'],
    IDP_DATA_DIR: dataDir,
    IDP_PORT: String(port),
    IDP_HOST: '127.0.0.1',
    IDP_ISSUER: `https://localhost:${port}`,
  };
}

describe('embedded mode (no DATABASE_URL, REDIS_URL or certificate)', () => {
  let dataDir: string;
  let port: number;
  let server: ChildProcess;
  let output = '';
  let dispatcher: Agent;

  before(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'idp-embedded-'));
    port = await freePort();
    server = spawn(process.execPath, [IDP_BIN, 'serve'], {
      env: embeddedEnv(dataDir, port),
      stdio: 'pipe',
    });
    server.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 60_000;
    while (!output.includes('idp is listening')) {
      if (server.exitCode !== null) throw new Error(`idp serve exited: ${output}`);
      if (Date.now() > deadline) throw new Error(`idp serve did not start: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    dispatcher = new Agent({
      connect: { ca: readFileSync(path.join(dataDir, 'tls', 'cert.pem')) },
    });
  });

  after(async () => {
    if (server && server.exitCode === null) server.kill('SIGKILL');
    await dispatcher?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('logs the certificate and the one-node warnings', () => {
    const lines = output
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const certificate = lines.find((line) => line['certFile']);
    assert.equal(certificate?.['certFile'], path.join(dataDir, 'tls', 'cert.pem'));
    assert.ok(lines.some((line) => String(line['msg']).startsWith('REDIS_URL is not set')));
    const database = lines.find((line) =>
      String(line['msg']).startsWith('DATABASE_URL is not set'),
    );
    assert.equal(database?.['dataDir'], dataDir);
  });

  it('keeps generated secrets readable by the owner only', () => {
    for (const file of ['secrets.json', 'tls/key.pem']) {
      assert.equal(statSync(path.join(dataDir, file)).mode & 0o077, 0, file);
    }
  });

  it('serves https with the generated certificate', async () => {
    const response = await fetch(`https://localhost:${port}/.well-known/openid-configuration`, {
      dispatcher,
    });
    assert.equal(response.status, 200);
    const discovery = (await response.json()) as Record<string, string>;
    assert.equal(discovery['issuer'], `https://localhost:${port}`);
  });

  it('commands reach the running server database; a user signs in', async () => {
    const env = embeddedEnv(dataDir, port);
    const user = await runIdp(
      env,
      ['users', 'create', 'newcomer', '--password-stdin'],
      TEST_PASSWORD,
    );
    assert.equal(user.code, 0, user.stderr);
    const created = await runIdp(env, [
      'clients',
      'create',
      '--client-id',
      'my-app',
      '--redirect-uri',
      'http://localhost:3000/callback',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const secret = /client secret .*: (\S+)/.exec(created.stdout)?.[1];
    assert.ok(secret);

    const idp = { issuer: `https://localhost:${port}`, dispatcher } as unknown as TestIdp;
    const config = await discoverRp(idp, 'my-app', secret);
    const browser = new TestBrowser(dispatcher);
    const { tokens } = await signInAndExchange(
      idp,
      config,
      browser,
      'http://localhost:3000/callback',
      'newcomer',
      TEST_PASSWORD,
    );
    assert.equal(tokens.claims()?.['preferred_username'], 'newcomer');
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, tokens.claims()!.sub);
    assert.equal(userinfo.sub, tokens.claims()!.sub);
  });

  it('second server on one folder rejected', async () => {
    const second = await runIdp(embeddedEnv(dataDir, await freePort()), ['serve']);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /the embedded database in .* is already open in process \d+/);
    assert.equal(existsSync(path.join(dataDir, '.s.PGSQL.5432')), true);
    const list = await runIdp(embeddedEnv(dataDir, port), ['users', 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
  });

  it('ten commands at once all reach the server', async () => {
    const env = embeddedEnv(dataDir, port);
    const names = Array.from({ length: 10 }, (_, i) => `parallel-${i}`);
    const results = await Promise.all(
      names.map((name) =>
        runIdp(env, ['users', 'create', name, '--password-stdin'], TEST_PASSWORD),
      ),
    );
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    assert.equal(existsSync(path.join(dataDir, '.s.PGSQL.5432')), true);
    // Every one of them is in the server's database.
    const list = await runIdp(env, ['users', 'list', '--json']);
    for (const name of names) assert.match(list.stdout, new RegExp(`"username":"${name}"`));
  });

  it('SIGTERM stops the server with exit code 0 and removes the socket', async () => {
    const exited = new Promise<number | null>((resolve) =>
      server.once('exit', (code) => resolve(code)),
    );
    server.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.equal(existsSync(path.join(dataDir, '.s.PGSQL.5432')), false);
  });

  it('a command after the server stopped opens the database directly', async () => {
    const list = await runIdp(embeddedEnv(dataDir, port), ['users', 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /"username":"newcomer"/);
    // The writes made through the server's socket were kept.
    assert.match(list.stdout, /"username":"parallel-9"/);
  });
});
