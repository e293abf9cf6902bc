import type { Database } from '../db/database.ts';
import { AppError } from '../errors.ts';
import type { Encryptor } from '../security/encryption.ts';
import {
  generateRecoveryCodes,
  hashRecoveryCode,
  normaliseRecoveryCode,
} from './recovery-codes.ts';
import { matchingSteps, normaliseTotpCode } from './totp.ts';

/** Outcome of checking a TOTP code. `replayed` means a valid code of an already used time step. */
export type TotpResult = 'accepted' | 'wrong' | 'replayed' | 'not_enrolled';

export interface MfaStatus {
  enrolled: boolean;
  recoveryCodesLeft: number;
}

interface CredentialRow {
  secret_ciphertext: string;
  last_step: string | number;
}

/** Additional data that binds a TOTP secret's ciphertext to its account. */
export const totpSecretContext = (accountId: string) => `totp:${accountId}`;

/** Queries of the `totp_credentials` and `recovery_codes` tables. Secrets are stored encrypted. */
export class MfaStore {
  readonly #db: Database;
  readonly #encryptor: Encryptor;
  readonly #now: () => number;

  constructor(db: Database, encryptor: Encryptor, now: () => number = Date.now) {
    this.#db = db;
    this.#encryptor = encryptor;
    this.#now = now;
  }

  async status(accountId: string): Promise<MfaStatus> {
    const rows = await this.#db.query<{ enrolled: boolean; left: string | number }>(
      `SELECT EXISTS (SELECT 1 FROM totp_credentials WHERE account_id = $1) AS enrolled,
              (SELECT count(*) FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL) AS left`,
      [accountId],
    );
    const row = rows[0];

    return { enrolled: row?.enrolled === true, recoveryCodesLeft: Number(row?.left ?? 0) };
  }

  /**
   * Stores the first authenticator of an account together with a new set of recovery codes, and
   * returns the codes. `acceptedStep` is the step of the confirmation code, so that code cannot be
   * used again. Fails with a conflict when the account already has an authenticator, which
   * happens when two enrolments of one account race.
   */
  async enrol(accountId: string, secret: Buffer, acceptedStep: number): Promise<string[]> {
    const codes = generateRecoveryCodes();
    await this.#db.transaction(async (tx) => {
      const inserted = await tx.query(
        `INSERT INTO totp_credentials (account_id, secret_ciphertext, last_step, last_used_at)
         VALUES ($1, $2, $3, now()) ON CONFLICT (account_id) DO NOTHING RETURNING 1`,
        [accountId, this.#encryptor.encrypt(secret, totpSecretContext(accountId)), acceptedStep],
      );
      if (inserted.length === 0) {
        throw new AppError('conflict', 'Two-step sign-in is already set up for this account.');
      }
      await this.#replaceRecoveryCodes(tx, accountId, codes);
    });

    return codes;
  }

  /** Replaces the authenticator of an enrolled account. Its recovery codes stay valid. */
  async replace(accountId: string, secret: Buffer, acceptedStep: number): Promise<void> {
    const rows = await this.#db.query(
      `UPDATE totp_credentials
       SET secret_ciphertext = $2, last_step = $3, created_at = now(), last_used_at = now()
       WHERE account_id = $1 RETURNING 1`,
      [accountId, this.#encryptor.encrypt(secret, totpSecretContext(accountId)), acceptedStep],
    );
    if (rows.length === 0) {
      throw new AppError('conflict', 'Two-step sign-in is not set up for this account.');
    }
  }

  /**
   * Checks a TOTP code and, when it is valid, records its time step with a compare-and-set, so
   * that of two nodes checking the same code at once only one accepts it.
   */
  async verifyTotp(accountId: string, input: string): Promise<TotpResult> {
    const code = normaliseTotpCode(input);
    const rows = await this.#db.query<CredentialRow>(
      'SELECT secret_ciphertext, last_step FROM totp_credentials WHERE account_id = $1',
      [accountId],
    );
    const row = rows[0];
    if (!row) return 'not_enrolled';
    if (code === undefined) return 'wrong';

    const secret = this.#encryptor.decrypt(row.secret_ciphertext, totpSecretContext(accountId));
    const lastStep = Number(row.last_step);
    const fresh = matchingSteps(secret, code, this.#now(), lastStep);
    if (fresh.length === 0) {
      return matchingSteps(secret, code, this.#now()).length > 0 ? 'replayed' : 'wrong';
    }
    const step = fresh[0] as number;
    const updated = await this.#db.query(
      `UPDATE totp_credentials SET last_step = $2, last_used_at = now()
       WHERE account_id = $1 AND last_step < $2 RETURNING 1`,
      [accountId, step],
    );

    return updated.length === 1 ? 'accepted' : 'replayed';
  }

  /**
   * Uses up one recovery code. Returns how many codes are left after it, or undefined when the code
   * is wrong or was used before.
   */
  async useRecoveryCode(accountId: string, input: string): Promise<number | undefined> {
    const code = normaliseRecoveryCode(input);
    if (code === undefined) return undefined;
    const rows = await this.#db.query<{ left: string | number }>(
      `WITH used AS (
         UPDATE recovery_codes SET used_at = now()
         WHERE account_id = $1 AND code_hash = $2 AND used_at IS NULL RETURNING 1
       )
       SELECT (SELECT count(*) FROM used) AS used_count,
              (SELECT count(*) FROM recovery_codes
               WHERE account_id = $1 AND used_at IS NULL) - (SELECT count(*) FROM used) AS left`,
      [accountId, hashRecoveryCode(accountId, code)],
    );
    const row = rows[0] as { used_count: string | number; left: string | number } | undefined;
    if (!row || Number(row.used_count) !== 1) return undefined;

    return Number(row.left);
  }

  /** Replaces every recovery code of an account by a new set, which it returns. */
  async regenerateRecoveryCodes(accountId: string): Promise<string[]> {
    const codes = generateRecoveryCodes();
    await this.#db.transaction((tx) => this.#replaceRecoveryCodes(tx, accountId, codes));

    return codes;
  }

  /** Removes the authenticator and recovery codes of an account. Returns whether it had any. */
  async reset(accountId: string): Promise<boolean> {
    return this.#db.transaction(async (tx) => {
      const credentials = await tx.query(
        'DELETE FROM totp_credentials WHERE account_id = $1 RETURNING 1',
        [accountId],
      );
      const codes = await tx.query('DELETE FROM recovery_codes WHERE account_id = $1 RETURNING 1', [
        accountId,
      ]);

      return credentials.length + codes.length > 0;
    });
  }

  async #replaceRecoveryCodes(
    tx: Pick<Database, 'query'>,
    accountId: string,
    codes: string[],
  ): Promise<void> {
    await tx.query('DELETE FROM recovery_codes WHERE account_id = $1', [accountId]);
    await tx.query(
      `INSERT INTO recovery_codes (account_id, code_hash)
       SELECT $1, unnest($2::text[])`,
      [accountId, codes.map((code) => hashRecoveryCode(accountId, code.replaceAll('-', '')))],
    );
  }
}
