import { randomBytes } from 'node:crypto';
import type { Database } from '../src/db/database.ts';
import { totpSecretContext } from '../src/mfa/store.ts';
import { timeStep, totpAt } from '../src/mfa/totp.ts';
import type { Encryptor } from '../src/security/encryption.ts';

/*
 * The TOTP step of the sign-in scenario: every benchmark account is enrolled with a secret of its
 * own, and the sign-in flow answers idp's code form with the code of the current 30-second step,
 * as an authenticator app would.
 */

const secrets = new Map<string, Buffer>();

/** Returns the current code of `username`; fails when the bench enrolled no secret for it. */
export function totpCodeFor(username: string): string {
  const secret = secrets.get(username);
  if (!secret) {
    throw new Error(`idp asked ${username} for a TOTP code, but the bench enrolled no secret`);
  }

  return totpAt(secret, Date.now());
}

/**
 * Enrols every account with a new TOTP secret, stored as idp stores it (encrypted under the
 * account's context), in one statement per thousand accounts. No recovery codes: sign-in does not
 * need them.
 */
export async function enrolTotp(database: Database, encryptor: Encryptor): Promise<number> {
  const accounts = await database.query<{ id: string; username: string }>(
    'SELECT id, username FROM accounts',
  );
  // A step well before now, so the first code of every account is accepted.
  const lastStep = timeStep(Date.now()) - 10;
  for (let start = 0; start < accounts.length; start += 1000) {
    const batch = accounts.slice(start, start + 1000);
    const ciphertexts = batch.map(({ id, username }) => {
      const secret = randomBytes(20);
      secrets.set(username, secret);

      return encryptor.encrypt(secret, totpSecretContext(id));
    });
    await database.query(
      `INSERT INTO totp_credentials (account_id, secret_ciphertext, last_step)
       SELECT id, secret, $3 FROM unnest($1::uuid[], $2::text[]) AS t(id, secret)`,
      [batch.map(({ id }) => id), ciphertexts, lastStep],
    );
  }

  return accounts.length;
}
