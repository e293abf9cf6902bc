import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { IDP_BIN } from './cli.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The environment a child idp gets: the given variables and PATH, nothing of the test's own. */
function childEnv(env: Record<string, string>): Record<string, string> {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env };
}

export interface IdpProcess {
  child: ChildProcess;
  /** Parsed JSON log lines from standard output. */
  logs: Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the first log line that matches, waiting up to `timeoutMs`. */
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends SIGKILL if the process still runs. */
  kill(): void;
}

/**
 * Starts `idp serve` (or the given command line) as a child process and waits until it says it
 * listens. Fails with its standard error when it exits first.
 */
export async function startIdpProcess(
  env: Record<string, string>,
  command: string[] = [process.execPath, IDP_BIN, 'serve'],
  cwd = REPO_ROOT,
): Promise<IdpProcess> {
  const [file, ...args] = command as [string, ...string[]];
  const child = spawn(file, args, { env: childEnv(env), cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let partial = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines.filter(Boolean)) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line, unparsed: true });
      }
    }
    for (const wake of waiters) wake();
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      for (const wake of waiters) wake();
      resolve({ code, signal });
    }),
  );

  const waitForLog = (match: (line: Record<string, unknown>) => boolean, timeoutMs = 20_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const found = logs.find(match);
        if (found) {
          finish();
          resolve(found);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          finish();
          reject(new Error(`idp exited (${child.exitCode ?? child.signalCode}): ${stderr}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const running: IdpProcess = {
    child,
    logs,
    stderr: () => stderr,
    waitForLog,
    exited,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
  try {
    await waitForLog((line) => line['msg'] === 'idp is listening');
  } catch (error) {
    running.kill();
    throw error;
  }

  return running;
}
