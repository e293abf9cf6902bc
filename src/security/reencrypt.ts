import type { Database } from '../db/database.ts';
import { totpSecretContext } from '../mfa/store.ts';
import { secretContext } from '../oidc/clients.ts';
import { signingKeyContext } from '../oidc/keys.ts';
import { Encryptor } from './encryption.ts';

/** A column that contains values encrypted with IDP_ENCRYPTION_KEY. */
interface EncryptedColumn {
  what: string;
  table: string;
  id: string;
  column: string;
  context: (id: string) => string;
}

/** Every encrypted column; a new one must be listed here so that reencrypt moves it too. */
export const ENCRYPTED_COLUMNS: readonly EncryptedColumn[] = [
  {
    what: 'signing keys',
    table: 'signing_keys',
    id: 'kid',
    column: 'jwk_ciphertext',
    context: signingKeyContext,
  },
  {
    what: 'client secrets',
    table: 'clients',
    id: 'client_id',
    column: 'secret_ciphertext',
    context: secretContext,
  },
  {
    what: 'TOTP secrets',
    table: 'totp_credentials',
    id: 'account_id',
    column: 'secret_ciphertext',
    context: totpSecretContext,
  },
];

export interface ReencryptResult {
  what: string;
  moved: number;
  total: number;
}

/**
 * Re-encrypts every stored secret that is not yet under the newest key (the first of
 * IDP_ENCRYPTION_KEY), in one transaction: either all move or none do. Afterwards the older keys
 * can be removed from IDP_ENCRYPTION_KEY.
 */
export async function reencryptStoredSecrets(
  database: Database,
  encryptor: Encryptor,
): Promise<ReencryptResult[]> {
  return database.transaction(async (tx) => {
    const results: ReencryptResult[] = [];
    for (const column of ENCRYPTED_COLUMNS) {
      const rows = await tx.query<{ id: string; value: string }>(
        `SELECT ${column.id} AS id, ${column.column} AS value FROM ${column.table}
         WHERE ${column.column} IS NOT NULL FOR UPDATE`,
      );
      let moved = 0;
      for (const row of rows) {
        if (Encryptor.keyIdOf(row.value) === encryptor.currentKeyId) continue;
        const context = column.context(row.id);
        let plaintext: Buffer;
        try {
          plaintext = encryptor.decrypt(row.value, context);
        } catch (error) {
          throw new Error(
            `cannot decrypt the ${column.what} value of ${row.id}: ${(error as Error).message}`,
            { cause: error },
          );
        }
        await tx.query(`UPDATE ${column.table} SET ${column.column} = $1 WHERE ${column.id} = $2`, [
          encryptor.encrypt(plaintext, context),
          row.id,
        ]);
        moved++;
      }
      results.push({ what: column.what, moved, total: rows.length });
    }

    return results;
  });
}
