import { userInfo } from 'node:os';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { AppError } from '../errors.ts';

/**
 * Reads a secret from standard input: the whole of a pipe without its final line break, or one
 * line typed at a terminal without echo. Secrets never come from arguments, which other users of
 * the machine can read in the process list.
 */
export async function readSecretFromStdin(prompt: string): Promise<string> {
  if (process.stdin.isTTY) {
    const muted = new Writable({ write: (_chunk, _encoding, done) => done() });
    process.stderr.write(prompt);
    const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
    const line = await new Promise<string>((resolve) => rl.once('line', resolve));
    rl.close();
    process.stderr.write('\n');

    return line;
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');

  return text.replace(/\r?\n$/, '');
}

/** Reads a secret that must not be empty. */
export async function readRequiredSecret(what: string): Promise<string> {
  const secret = await readSecretFromStdin(`${what}: `);
  if (secret === '') {
    throw new AppError('invalid_input', `${what} on standard input is empty`);
  }

  return secret;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Prints rows as aligned columns with a header line. */
export function printTable(headers: string[], rawRows: string[][]): void {
  // Control characters in stored values would move the cursor or fake a row on the terminal.
  const rows = rawRows.map((row) => row.map((cell) => JSON.stringify(cell).slice(1, -1)));
  const widths = headers.map((header, i) =>
    Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length)),
  );
  const format = (cells: string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${[format(headers), ...rows.map(format)].join('\n')}\n`);
}

/** Names the operating-system user running the command, for the record of who changed what. */
export function osUser(): string {
  try {
    return userInfo().username;
  } catch {
    // Containers may run under a uid with no passwd entry.
    return process.env['USER'] ?? `uid ${process.getuid?.() ?? 'unknown'}`;
  }
}
