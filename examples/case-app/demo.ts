/**
 * `npm run demo`: starts idp in embedded mode and the example case-management app, registers the
 * app and a demo user when they are missing, and prints the address to open. Ctrl-C stops both.
 *
 * Settings (all optional): IDP_DATA_DIR (./data), IDP_PORT (8443), CASE_APP_URL
 * (http://localhost:3000).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const idpBin = path.join(root, 'bin', 'idp.js');
const appMain = fileURLToPath(new URL('./main.ts', import.meta.url));

const CLIENT_ID = 'case-app';
const DEMO_USER = 'demo';

const dataDir = path.resolve(process.env['IDP_DATA_DIR'] ?? path.join(root, 'data'));
const idpPort = process.env['IDP_PORT'] ?? '8443';
const issuer = `https://localhost:${idpPort}`;
const appUrl = new URL(process.env['CASE_APP_URL'] ?? 'http://localhost:3000');
const secretFile = path.join(dataDir, 'case-app.secret');

/** The environment of idp and its commands: embedded mode, listening on this machine only. */
const idpEnv: NodeJS.ProcessEnv = {
  ...process.env,
  DATABASE_URL: '',
  REDIS_URL: '',
  IDP_DATA_DIR: dataDir,
  IDP_PORT: idpPort,
  IDP_HOST: '127.0.0.1',
  IDP_ISSUER: issuer,
  IDP_PRODUCT_NAME: process.env['IDP_PRODUCT_NAME'] ?? 'Case Manager sign-in',
};

const say = (line: string) => process.stdout.write(`${line}\n`);

/**
 * Starts a child whose output goes to a log file in the data folder, and resolves once a line of
 * its output passes `ready`.
 */
function startChild(
  name: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: (line: string) => boolean,
): Promise<ChildProcess> {
  const log = createWriteStream(path.join(dataDir, `demo-${name}.log`), { flags: 'a' });

  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let started = false;
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      if (started) return;
      output += chunk.toString();
      if (output.split('\n').some(ready)) {
        started = true;
        resolve(child);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      if (!started) reject(new Error(`${name} stopped (exit code ${code}):\n${output.trim()}`));
    });
  });
}

/** Runs one `idp` command against the running server's database. */
function idp(args: string[], input = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [idpBin, ...args], { env: idpEnv, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) =>
      code === 0
        ? resolve(stdout)
        : reject(new Error(`idp ${args.slice(0, 2).join(' ')} failed: ${stderr.trim()}`)),
    );
    child.stdin.end(input);
  });
}

const jsonLines = (text: string) =>
  text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);

/** Registers the app unless it is registered with these addresses and its secret is on file. */
async function ensureClient(): Promise<string> {
  const redirectUri = new URL('/callback', appUrl).href;
  const existing = jsonLines(await idp(['clients', 'list', '--json'])).find(
    (client) => client['clientId'] === CLIENT_ID,
  );
  const upToDate =
    existing !== undefined &&
    existsSync(secretFile) &&
    JSON.stringify(existing['redirectUris']) === JSON.stringify([redirectUri]);
  if (upToDate) return readFileSync(secretFile, 'utf8').trim();

  if (existing) await idp(['clients', 'delete', CLIENT_ID]);
  const secret = randomBytes(32).toString('base64url');
  await idp(
    [
      'clients',
      'create',
      '--client-id',
      CLIENT_ID,
      '--name',
      'Case Manager',
      '--redirect-uri',
      redirectUri,
      '--post-logout-redirect-uri',
      new URL('/signed-out', appUrl).href,
      '--backchannel-logout-uri',
      new URL('/backchannel-logout', appUrl).href,
      '--require-2fa',
      '--client-secret-stdin',
    ],
    secret,
  );
  writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  say(`Registered the app '${CLIENT_ID}' in idp (second factor required).`);

  return secret;
}

/** Creates the demo user when missing and prints its password, which is shown only this once. */
async function ensureUser(): Promise<void> {
  const users = jsonLines(await idp(['users', 'list', '--json']));
  if (users.some((user) => user['username'] === DEMO_USER)) {
    say(
      `User '${DEMO_USER}' exists; its password was printed when it was created. To set a new one:`,
    );
    say(
      `  printf '%s' 'NEW PASSWORD' | IDP_DATA_DIR=${dataDir} npx idp users set-password ${DEMO_USER} --password-stdin`,
    );

    return;
  }
  const password = randomBytes(12).toString('base64url');
  await idp(
    [
      'users',
      'create',
      DEMO_USER,
      '--name',
      'Dana Demo',
      '--email',
      'demo@example.org',
      '--password-stdin',
    ],
    password,
  );
  say(`Created user '${DEMO_USER}' with the password: ${password}`);
  say('  (shown only now; the first sign-in sets up the second factor with an authenticator app)');
}

function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();

  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

async function main(): Promise<void> {
  let server: ChildProcess | undefined;
  let app: ChildProcess | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await Promise.all([stopChild(app), stopChild(server)]);
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));

  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    say(`Starting idp (embedded mode, data in ${dataDir}) ...`);
    server = await startChild('idp', [idpBin, 'serve'], idpEnv, (line) =>
      line.includes('"idp is listening"'),
    );
    const secret = await ensureClient();
    await ensureUser();
    app = await startChild(
      'case-app',
      [appMain],
      {
        ...process.env,
        NODE_EXTRA_CA_CERTS: path.join(dataDir, 'tls', 'cert.pem'),
        CASE_APP_ISSUER: issuer,
        CASE_APP_CLIENT_ID: CLIENT_ID,
        CASE_APP_CLIENT_SECRET: secret,
        CASE_APP_URL: appUrl.href,
      },
      (line) => line.includes('listening on'),
    );
  } catch (error) {
    process.stderr.write(`demo: ${(error as Error).message}\n`);
    await stop(1);

    return;
  }
  for (const [name, child] of [
    ['idp', server],
    ['case-app', app],
  ] as const) {
    child.once('exit', (code) => {
      if (stopping) return;
      // Ctrl-C in a terminal signals the children too, and one may stop before the demo does.
      if (code === 0) {
        void stop(0);

        return;
      }
      process.stderr.write(`demo: ${name} stopped unexpectedly (exit code ${code})\n`);
      void stop(1);
    });
  }
  say('');
  say(`Open ${appUrl.href} and sign in.`);
  say(`idp runs at ${issuer} with a self-signed certificate: the browser warns about it once;`);
  say(`accept it, or trust ${path.join(dataDir, 'tls', 'cert.pem')}.`);
  say(`Logs: ${path.join(dataDir, 'demo-idp.log')} and demo-case-app.log beside it.`);
  say('Press Ctrl-C to stop both.');
}

await main();
