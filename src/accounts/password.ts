import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { hash, verify } from '@node-rs/argon2';

/** argon2id parameters for new hashes: 64 MiB, 3 passes, 4 lanes (OWASP's first choice, 2023). */
export const HASH_PARAMETERS = {
  // Algorithm.Argon2id, a const enum that type stripping cannot read.
  algorithm: 2,
  memoryCost: 65536,
  timeCost: 3,
  parallelism: 4,
} as const;

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

/** Returns why a new password cannot be used, or undefined when it is acceptable. */
export function passwordProblem(password: string): string | undefined {
  if (password.length === 0) return 'password must not be empty';
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    return `password must be at least ${MIN_PASSWORD_LENGTH} characters`;
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    return `password must be at most ${MAX_PASSWORD_LENGTH} characters`;
  }

  return undefined;
}

/**
 * Number of argon2id computations that run at once: every core but one. Each takes a core for
 * tens of milliseconds, and libuv's four pool threads would otherwise take every core of a small
 * machine during a burst of sign-ins, leaving the event loop that serves tokens to wait.
 */
export const MAX_CONCURRENT_HASHES = Math.max(1, availableParallelism() - 1);

let hashesRunning = 0;
const waitingForHash: (() => void)[] = [];

/** Runs one argon2id computation once a slot is free; a finished one hands its slot on. */
async function inHashSlot<T>(work: () => Promise<T>): Promise<T> {
  if (hashesRunning < MAX_CONCURRENT_HASHES) hashesRunning += 1;
  else await new Promise<void>((resolve) => waitingForHash.push(resolve));
  try {
    return await work();
  } finally {
    const next = waitingForHash.shift();
    if (next) next();
    else hashesRunning -= 1;
  }
}

/** Returns the number of argon2id computations running now, for tests. */
export function runningHashes(): number {
  return hashesRunning;
}

/**
 * Hashes a password with argon2id. @node-rs/argon2 runs the work on libuv's thread pool, so the
 * event loop stays free while it runs.
 */
export function hashPassword(password: string): Promise<string> {
  return inHashSlot(() => hash(password.normalize('NFKC'), HASH_PARAMETERS));
}

/** Checks a password against a stored hash; a malformed hash counts as a mismatch. */
export async function verifyPassword(storedHash: string, password: string): Promise<boolean> {
  try {
    return await inHashSlot(() => verify(storedHash, password.normalize('NFKC')));
  } catch {
    return false;
  }
}

/** True when a stored hash was made with other parameters than today's, so it should be redone. */
export function needsRehash(storedHash: string): boolean {
  const match = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(storedHash);
  if (!match) return true;

  return (
    Number(match[1]) !== HASH_PARAMETERS.memoryCost ||
    Number(match[2]) !== HASH_PARAMETERS.timeCost ||
    Number(match[3]) !== HASH_PARAMETERS.parallelism
  );
}

let dummyHash: Promise<string> | undefined;

/**
 * Returns a hash of a random password made with today's parameters. Sign-in verifies against it
 * when the username is unknown, so that unknown and known users take the same time.
 */
export function getDummyHash(): Promise<string> {
  dummyHash ??= hashPassword(randomBytes(32).toString('base64'));

  return dummyHash;
}
