import { randomBytes, timingSafeEqual } from 'node:crypto';
import { ScureBase32Plugin, generateSync } from 'otplib';

/** TOTP parameters that every authenticator app supports (RFC 6238 defaults). */
export const TOTP = {
  algorithm: 'SHA1',
  digits: 6,
  periodSeconds: 30,
  /** Steps of clock drift accepted each way: the previous, current and next code. */
  window: 1,
  /** Secret length in bytes: 160 bits, as RFC 4226 recommends for HMAC-SHA-1. */
  secretBytes: 20,
} as const;

const base32 = new ScureBase32Plugin();

/** Encodes bytes as RFC 4648 base32 without padding, the form authenticator apps expect. */
export function base32Encode(bytes: Buffer): string {
  return base32.encode(bytes);
}

/** Creates a new random TOTP secret. */
export function generateSecret(): Buffer {
  return randomBytes(TOTP.secretBytes);
}

/** Formats a base32 key in groups of four for manual entry, as WinAuth and others accept it. */
export function groupKey(base32: string): string {
  return base32.match(/.{1,4}/g)?.join(' ') ?? '';
}

/** Computes the HOTP value of RFC 4226 for one counter, as a zero-padded decimal string. */
export function hotp(secret: Buffer, counter: number): string {
  return generateSync({
    strategy: 'hotp',
    secret,
    counter,
    algorithm: 'sha1',
    digits: TOTP.digits,
  });
}

/** Returns the RFC 6238 time step of a moment given in epoch milliseconds. */
export function timeStep(epochMs: number): number {
  return Math.floor(epochMs / 1000 / TOTP.periodSeconds);
}

/** Returns the code of a secret at a moment given in epoch milliseconds. */
export function totpAt(secret: Buffer, epochMs: number): string {
  return hotp(secret, timeStep(epochMs));
}

/** Strips the spaces and dashes that people type inside a code, or returns undefined for a non-code. */
export function normaliseTotpCode(input: string): string | undefined {
  const code = input.replace(/[\s-]/g, '');

  return new RegExp(`^\\d{${TOTP.digits}}$`).test(code) ? code : undefined;
}

/**
 * Returns the time steps, oldest first, within the drift window around `epochMs` whose code
 * equals `code` and that are later than `afterStep`. Every step of the window is compared in
 * constant time, so the response time does not reveal which step matched.
 */
export function matchingSteps(
  secret: Buffer,
  code: string,
  epochMs: number,
  afterStep: number | null = null,
): number[] {
  const current = timeStep(epochMs);
  const typed = Buffer.from(code.padEnd(TOTP.digits, ' ').slice(0, TOTP.digits));
  const matches: number[] = [];
  // otplib 13's verify is not used: it returns at the first match and skips steps up to
  // `afterStep`, so its timing reveals the step, and it reports one step where callers need all.
  for (let step = current - TOTP.window; step <= current + TOTP.window; step++) {
    const equal = timingSafeEqual(Buffer.from(hotp(secret, step)), typed);
    if (equal && (afterStep === null || step > afterStep)) matches.push(step);
  }

  return matches;
}

/**
 * Builds the otpauth URI that authenticator apps read from the QR code. The label is
 * `issuer:username` and the issuer is repeated as a parameter, as current apps expect.
 */
export function otpauthUri(options: { issuer: string; username: string; secret: Buffer }): string {
  // otplib 13's generateURI is not used: it omits algorithm, digits and period at their defaults
  // and leaves a ':' in the issuer or username unescaped, so the label splits in the wrong place.
  const issuer = encodeURIComponent(options.issuer);
  const label = `${issuer}:${encodeURIComponent(options.username)}`;
  const params = [
    `secret=${base32Encode(options.secret)}`,
    `issuer=${issuer}`,
    `algorithm=${TOTP.algorithm}`,
    `digits=${TOTP.digits}`,
    `period=${TOTP.periodSeconds}`,
  ];

  return `otpauth://totp/${label}?${params.join('&')}`;
}
