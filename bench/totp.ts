import { createHmac } from 'node:crypto';
import type { Database } from '../src/db/database.ts';

/*
 * The TOTP step of the sign-in scenario. The bench enrols each benchmark account with a secret of
 * its own and answers the server's code form with the code of the current 30-second step, as an
 * authenticator app would.
 *
 * TOTP is not in idp yet, so enrolTotp() enrols nobody and the sign-in scenario runs with the
 * password step only; the report says so. When the TOTP store exists, enrolTotp() stores each
 * secret through it, and signIn() in flows.ts already fills in any form with a `code` field.
 */

const secrets = new Map<string, Buffer>();

/** RFC 6238 code: HMAC-SHA-1, 6 digits, 30-second steps, as authenticator apps compute it. */
export function totpCode(secret: Buffer, at = Date.now()): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(at / 30_000)));
  const mac = createHmac('sha1', secret).update(counter).digest();
  const offset = (mac[mac.length - 1] as number) & 0x0f;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;

  return String(value).padStart(6, '0');
}

/** The code the bench answers for `username`; fails when the server asks for one it never enrolled. */
export function totpCodeFor(username: string): string {
  const secret = secrets.get(username);
  if (!secret)
    throw new Error(
      `the server asked ${username} for a TOTP code, but the bench enrolled no secret`,
    );

  return totpCode(secret);
}

/**
 * Enrols the benchmark accounts with TOTP secrets. Returns false while idp has no TOTP store, and
 * the sign-in scenario then measures password-only sign-ins.
 */
export function enrolTotp(_database: Database, usernames: string[]): Promise<boolean> {
  for (const username of usernames) secrets.delete(username);

  return Promise.resolve(false);
}
