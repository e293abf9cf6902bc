import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Database } from '../db/database.ts';
import type { Encryptor } from '../security/encryption.ts';

/** Algorithms idp signs ID tokens with. Both are widely verified; RS256 is the OIDC default. */
export const SIGNING_ALGORITHMS = ['RS256', 'ES256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** Advisory lock that serialises key creation between nodes: "idp-keys" as two 32-bit halves. */
const KEYS_LOCK = [0x69647000, 0x6b657973] as const;

interface KeyRow {
  kid: string;
  alg: string;
  state: 'next' | 'active' | 'retired';
  jwk_ciphertext: string;
}

const encryptionContext = (kid: string) => `signing-key:${kid}`;

async function createKey(alg: SigningAlgorithm): Promise<JWK & { kid: string }> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk);

  return { ...jwk, kid, alg, use: 'sig' };
}

/**
 * Makes sure there is an active signing key for each algorithm, creating the missing ones under an
 * advisory lock so that nodes starting together create one key each, not one per node.
 */
export async function ensureSigningKeys(database: Database, encryptor: Encryptor): Promise<void> {
  await database.withSession(async (session) => {
    await session.query('SELECT pg_advisory_lock($1, $2)', [...KEYS_LOCK]);
    try {
      const rows = await session.query<{ alg: string }>(
        "SELECT DISTINCT alg FROM signing_keys WHERE state = 'active'",
      );
      const present = new Set(rows.map((row) => row.alg));
      for (const alg of SIGNING_ALGORITHMS.filter((name) => !present.has(name))) {
        const jwk = await createKey(alg);
        await session.query(
          `INSERT INTO signing_keys (kid, alg, state, jwk_ciphertext, activated_at)
           VALUES ($1, $2, 'active', $3, now())`,
          [jwk.kid, alg, encryptor.encrypt(JSON.stringify(jwk), encryptionContext(jwk.kid))],
        );
      }
    } finally {
      await session.query('SELECT pg_advisory_unlock($1, $2)', [...KEYS_LOCK]);
    }
  });
}

/**
 * Loads the private signing keys in the order oidc-provider wants them: for each algorithm the
 * first key signs, and the others are only published in the JWKS so that tokens they signed
 * still verify.
 */
export async function loadSigningKeys(database: Database, encryptor: Encryptor): Promise<JWK[]> {
  const rows = await database.query<KeyRow>(
    `SELECT kid, alg, state, jwk_ciphertext FROM signing_keys
     ORDER BY CASE state WHEN 'active' THEN 0 WHEN 'next' THEN 1 ELSE 2 END,
              activated_at DESC NULLS LAST, created_at DESC`,
  );

  return rows.map(
    (row) =>
      JSON.parse(encryptor.decryptString(row.jwk_ciphertext, encryptionContext(row.kid))) as JWK,
  );
}
