import { createHash, randomBytes } from 'node:crypto';
import { base32Encode } from './totp.ts';

/** How many recovery codes an account gets at a time. */
export const RECOVERY_CODE_COUNT = 10;

/**
 * Creates one recovery code: 80 random bits as 16 lower-case base32 characters in groups of four,
 * such as `abcd-efgh-ijkl-mnop`. With 80 bits, guessing a code from a stolen hash is out of reach,
 * so a salted SHA-256 is enough and a check stays cheap.
 */
export function generateRecoveryCode(): string {
  const text = base32Encode(randomBytes(10)).toLowerCase();

  return (text.match(/.{4}/g) as string[]).join('-');
}

export function generateRecoveryCodes(): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, generateRecoveryCode);
}

/**
 * Returns the canonical form of a typed recovery code (lower case, without spaces or dashes), or
 * undefined when the text cannot be one.
 */
export function normaliseRecoveryCode(input: string): string | undefined {
  const code = input.replace(/[\s-]/g, '').toLowerCase();

  return /^[a-z2-7]{16}$/.test(code) ? code : undefined;
}

/** Hashes a canonical recovery code, salted with the account id so equal codes differ per account. */
export function hashRecoveryCode(accountId: string, canonicalCode: string): string {
  return createHash('sha256').update(`${accountId}:${canonicalCode}`).digest('base64url');
}
