import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent } from 'undici';
import { decodeHtml, TestBrowser } from './support/browser.ts';
import { freePort } from './support/idp.ts';
import { base32Decode, nowSeconds, referenceTotp } from './support/totp.ts';

const DEMO = fileURLToPath(new URL('../examples/case-app/demo.ts', import.meta.url));

interface Demo {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/** Starts `npm run demo`'s script and waits until it prints that both servers are up. */
async function startDemo(env: NodeJS.ProcessEnv): Promise<Demo> {
  // A process group of its own, so that a test can signal it the way a terminal's Ctrl-C does.
  const child = spawn(process.execPath, [DEMO], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const deadline = Date.now() + 60_000;
  while (!output.includes('Press Ctrl-C')) {
    if (child.exitCode !== null) throw new Error(`the demo stopped: ${output}`);
    if (Date.now() > deadline) throw new Error(`the demo did not start: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return { child, output: () => output, exited };
}

function portIsClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('npm run demo', () => {
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let idpPort: number;
  let appPort: number;
  let demo: Demo | undefined;

  before(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'idp-demo-'));
    [idpPort, appPort] = [await freePort(), await freePort()];
    env = {
      PATH: process.env['PATH'],
      IDP_DATA_DIR: dataDir,
      IDP_PORT: String(idpPort),
      CASE_APP_URL: `http://localhost:${appPort}`,
    };
  });

  after(() => {
    if (demo?.child.exitCode === null) process.kill(-(demo.child.pid as number), 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('first run: registers the app, prints the password once, and the user signs in', async () => {
    demo = await startDemo(env);
    const output = demo.output();
    assert.match(output, /Registered the app 'case-app'/);
    const password = /Created user 'demo' with the password: (\S+)/.exec(output)?.[1];
    assert.ok(password, output);
    assert.ok(output.includes(`Open http://localhost:${appPort}/ and sign in.`), output);

    const dispatcher = new Agent({
      connect: { ca: readFileSync(path.join(dataDir, 'tls', 'cert.pem')) },
    });
    try {
      const browser = new TestBrowser(dispatcher);
      const loginPage = await browser.follow(`http://localhost:${appPort}/login`);
      assert.equal(loginPage.status, 200);
      assert.match(loginPage.body, /Case Manager sign-in/);
      // The app requires a second factor, so the first sign-in sets up an authenticator.
      const enrolPage = await browser.submit(loginPage, { username: 'demo', password });
      const key = decodeHtml(/<code class="key">([^<]+)<\/code>/.exec(enrolPage.body)?.[1] ?? '');
      assert.ok(key, enrolPage.body.slice(0, 300));
      const code = referenceTotp(base32Decode(key), nowSeconds());
      const codesPage = await browser.submit(enrolPage, { code });
      assert.match(codesPage.body, /recovery codes/);
      const done = await browser.submit(codesPage, {});
      assert.equal(done.status, 200, done.body.slice(0, 300));
      assert.match(done.body, /Dana Demo/);
      assert.match(done.body.replace(/\s+/g, ' '), /Second factor: <strong>yes<\/strong>/);
    } finally {
      await dispatcher.close();
    }
  });

  it('Ctrl-C stops both servers', async () => {
    assert.ok(demo);
    process.kill(-(demo.child.pid as number), 'SIGINT');
    assert.equal(await demo.exited, 0, demo.output());
    assert.ok(await portIsClosed(idpPort), 'idp still listens');
    assert.ok(await portIsClosed(appPort), 'the app still listens');
  });

  it('second run: reuses the app and the user, shows no password', async () => {
    demo = await startDemo(env);
    const output = demo.output();
    assert.doesNotMatch(output, /Registered the app/);
    assert.doesNotMatch(output, /with the password/);
    assert.match(output, /User 'demo' exists/);
    demo.child.kill('SIGTERM');
    assert.equal(await demo.exited, 0);
  });
});
