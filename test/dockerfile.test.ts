import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fetch } from 'undici';
import { createTestSetup, freePort, type TestSetup } from './support/idp.ts';
import { type IdpProcess, REPO_ROOT, startIdpProcess } from './support/process.ts';

const run = promisify(execFile);

interface Stage {
  name: string;
  /** The folder that stands for this stage's filesystem root. */
  root: string;
  workdir: string;
  env: Record<string, string>;
}

interface Image {
  stages: Stage[];
  cmd: string[];
  healthcheck: string[];
}

/** Splits the Dockerfile into instructions, joining continued lines and dropping comments. */
function instructions(text: string): [string, string][] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const space = line.indexOf(' ');

      return [line.slice(0, space).toUpperCase(), line.slice(space + 1).trim()];
    });
}

/**
 * Carries out a Dockerfile without Docker: each stage gets a folder for its filesystem, COPY
 * copies from the build context (or another stage), RUN runs in the stage's WORKDIR, and the
 * image's CMD and HEALTHCHECK are returned to be started. It knows the instructions this
 * project's Dockerfile uses and fails on any other, so the Dockerfile cannot drift from the test.
 */
async function buildOutsideDocker(
  dockerfile: string,
  context: string,
  into: string,
): Promise<Image> {
  const stages: Stage[] = [];
  let cmd: string[] = [];
  let healthcheck: string[] = [];
  const allowed = readFileSync(path.join(context, '.dockerignore'), 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('!'))
    .map((line) => line.slice(1).replace(/\/$/, ''));
  const inStage = (stage: Stage, target: string) =>
    path.join(stage.root, path.posix.resolve(stage.workdir, target));

  for (const [keyword, rest] of instructions(readFileSync(dockerfile, 'utf8'))) {
    const stage = stages.at(-1);
    if (keyword === 'FROM') {
      const name = /\bAS\s+(\S+)/i.exec(rest)?.[1] ?? `stage${stages.length}`;
      const root = path.join(into, name);
      mkdirSync(root, { recursive: true });
      stages.push({ name, root, workdir: '/', env: {} });
      continue;
    }
    assert.ok(stage, `${keyword} before FROM`);
    switch (keyword) {
      case 'WORKDIR':
        stage.workdir = path.posix.resolve(stage.workdir, rest);
        mkdirSync(inStage(stage, '.'), { recursive: true });
        break;
      case 'ENV': {
        const [name, value] = rest.split('=') as [string, string];
        stage.env[name] = value;
        break;
      }
      case 'COPY': {
        const parts = rest.split(/\s+/);
        const from = parts[0]?.startsWith('--from=') ? parts.shift()?.slice(7) : undefined;
        const dest = parts.pop() as string;
        for (const source of parts) {
          let sourcePath: string;
          if (from) {
            const other = stages.find((candidate) => candidate.name === from);
            assert.ok(other, `COPY --from=${from}: no such stage`);
            sourcePath = inStage(other, source);
          } else {
            assert.ok(allowed.includes(source), `${source} is left out by .dockerignore`);
            sourcePath = path.join(context, source);
          }
          const target = dest.endsWith('/')
            ? path.join(inStage(stage, dest), path.basename(source))
            : inStage(stage, dest);
          cpSync(sourcePath, target, { recursive: true });
        }
        break;
      }
      case 'RUN':
        await run('sh', ['-c', rest], {
          cwd: inStage(stage, '.'),
          env: { ...process.env, ...stage.env },
          maxBuffer: 16 * 1024 * 1024,
        });
        break;
      case 'CMD':
        cmd = JSON.parse(rest) as string[];
        break;
      case 'HEALTHCHECK':
        healthcheck = JSON.parse(rest.slice(rest.indexOf('CMD') + 3)) as string[];
        break;
      case 'USER':
      case 'EXPOSE':
      case 'STOPSIGNAL':
        break;
      default:
        assert.fail(`the test does not know the Dockerfile instruction ${keyword}`);
    }
  }

  return { stages, cmd, healthcheck };
}

describe('Dockerfile', () => {
  let setup: TestSetup;
  let folder: string;
  let image: Image;
  let idp: IdpProcess | undefined;

  before(
    async () => {
      setup = await createTestSetup();
      folder = mkdtempSync(path.join(tmpdir(), 'idp-image-'));
      image = await buildOutsideDocker(path.join(REPO_ROOT, 'Dockerfile'), REPO_ROOT, folder);
      // The build runs npm ci, which takes minutes on a busy machine.
    },
    { timeout: 300_000 },
  );

  after(async () => {
    idp?.kill();
    await setup?.cleanup();
    rmSync(folder, { recursive: true, force: true });
  });

  it('its build and start commands run a server that is ready', { timeout: 180_000 }, async () => {
    const final = image.stages.at(-1)!;
    const appDir = path.join(final.root, final.workdir);
    assert.equal(final.env['NODE_ENV'], 'production');
    // Tools that only development needs stay out of the image.
    for (const name of ['typescript', 'eslint', 'prettier', 'openid-client', 'supertest']) {
      assert.throws(
        () => readFileSync(path.join(appDir, 'node_modules', name, 'package.json')),
        `${name} is in the image`,
      );
    }

    const port = await freePort();
    const env = { ...final.env, ...setup.env, IDP_PORT: String(port) };
    idp = await startIdpProcess(env, image.cmd, appDir);
    const ready = await fetch(`https://localhost:${port}/readyz`, { dispatcher: setup.dispatcher });
    assert.equal(ready.status, 200);
    assert.equal(((await ready.json()) as { status: string }).status, 'ready');

    const [file, ...args] = image.healthcheck as [string, ...string[]];
    const health = await run(file, args, {
      cwd: appDir,
      env: { PATH: process.env['PATH'], ...env },
    });
    assert.equal(health.stderr, '');

    idp.child.kill('SIGTERM');
    assert.equal((await idp.exited).code, 0);
  });
});
