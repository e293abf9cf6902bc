import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { freePort } from './idp.ts';

/** A redis-server of a test's own, on a port of its own, without persistence. */
export interface OwnRedis {
  port: number;
  url: string;
  dir: string;
  /** Stops the server (SIGTERM) and waits until it has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** Stops it for good and removes its folder. */
  destroy(): Promise<void>;
}

async function waitForPing(port: number, child: ChildProcess, output: () => string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${output()}`);
    const probe = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      retryStrategy: () => null,
      maxRetriesPerRequest: 0,
    });
    probe.on('error', () => {});
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') return;
    } catch {
      // not up yet
    } finally {
      probe.disconnect();
    }
    await sleep(50);
  }
  throw new Error(`redis-server on port ${port} did not answer: ${output()}`);
}

/**
 * Starts `redis-server` with the given extra arguments; `configFile` makes a file in the server's
 * folder, written by `config(dir, port)`, its first argument (Sentinel needs one it can rewrite).
 * Fails loudly when the binary is missing: the tests that need it never skip.
 */
export async function startOwnRedis(
  extraArgs: string[] = [],
  configFile?: (dir: string, port: number) => string,
): Promise<OwnRedis> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'idp-redis-'));
  const config = configFile ? path.join(dir, 'redis.conf') : undefined;
  if (config && configFile) writeFileSync(config, configFile(dir, port));
  let child: ChildProcess | undefined;
  let output = '';

  const start = async () => {
    output = '';
    child = spawn(
      'redis-server',
      [
        ...(config ? [config] : []),
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
        ...extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const failed = new Promise<never>((_resolve, reject) =>
      child?.once('error', (error) =>
        reject(new Error(`cannot start redis-server: ${error.message}`)),
      ),
    );
    await Promise.race([waitForPing(port, child, () => output), failed]);
  };
  const stop = async () => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  };
  await start();

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    stop,
    start,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
