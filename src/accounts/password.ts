import { randomBytes } from 'node:crypto';
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
 * Hashes a password with argon2id. @node-rs/argon2 runs the work on libuv's thread pool, so the
 * event loop stays free while it runs.
 */
export function hashPassword(password: string): Promise<string> {
  return hash(password.normalize('NFKC'), HASH_PARAMETERS);
}

/** Checks a password against a stored hash; a malformed hash counts as a mismatch. */
export async function verifyPassword(storedHash: string, password: string): Promise<boolean> {
  try {
    return await verify(storedHash, password.normalize('NFKC'));
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
