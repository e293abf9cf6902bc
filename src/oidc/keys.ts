import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Database, Queryable } from '../db/database.ts';
import { AppError } from '../errors.ts';
import type { Encryptor } from '../security/encryption.ts';

/** Algorithms idp signs ID tokens with. Both are widely verified; RS256 is the OIDC default. */
export const SIGNING_ALGORITHMS = ['RS256', 'ES256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** Advisory lock that serialises key creation between nodes: "idp-keys" as two 32-bit halves. */
const KEYS_LOCK = [0x69647000, 0x6b657973] as const;

export type KeyState = 'next' | 'active' | 'retired';

interface KeyRow {
  kid: string;
  alg: string;
  state: KeyState;
  jwk_ciphertext: string;
  created_at: Date | string;
  activate_at: Date | string | null;
  activated_at: Date | string | null;
  retired_at: Date | string | null;
}

/** A signing key without its private part: what `idp keys list` shows. */
export interface SigningKeyInfo {
  kid: string;
  alg: string;
  state: KeyState;
  createdAt: Date;
  /** When a next key starts signing, or when an active or retired key did. */
  activateAt: Date | null;
  retiredAt: Date | null;
}

/** Additional data that binds a key's ciphertext to its row. */
export const signingKeyContext = (kid: string) => `signing-key:${kid}`;
const encryptionContext = signingKeyContext;

const date = (value: Date | string | null) => (value === null ? null : new Date(value));

function toInfo(row: KeyRow): SigningKeyInfo {
  return {
    kid: row.kid,
    alg: row.alg,
    state: row.state,
    createdAt: new Date(row.created_at),
    activateAt: date(row.activated_at ?? row.activate_at),
    retiredAt: date(row.retired_at),
  };
}

const KEY_ORDER = `ORDER BY CASE state WHEN 'active' THEN 0 WHEN 'next' THEN 1 ELSE 2 END,
  activated_at DESC NULLS LAST, created_at DESC`;

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
          `INSERT INTO signing_keys (kid, alg, state, jwk_ciphertext, activate_at, activated_at)
           VALUES ($1, $2, 'active', $3, now(), now())`,
          [jwk.kid, alg, encryptor.encrypt(JSON.stringify(jwk), encryptionContext(jwk.kid))],
        );
      }
    } finally {
      await session.query('SELECT pg_advisory_unlock($1, $2)', [...KEYS_LOCK]);
    }
  });
}

/** The signing keys as oidc-provider takes them, and when the set changes next on its own. */
export interface LoadedKeys {
  /**
   * Private JWKs in the order oidc-provider wants them: for each algorithm the first key signs,
   * and the others are only published in the JWKS so that tokens they signed still verify.
   */
  keys: JWK[];
  /** Changes whenever a key is added, removed or changes state. */
  fingerprint: string;
  /** The earliest time a next key starts signing, if one waits. */
  nextActivation?: Date;
}

/** Loads every published key: active, next and retired. */
export async function loadSigningKeys(
  database: Database,
  encryptor: Encryptor,
): Promise<LoadedKeys> {
  const rows = await database.query<KeyRow>(`SELECT * FROM signing_keys ${KEY_ORDER}`);
  const activations = rows
    .filter((row) => row.state === 'next' && row.activate_at !== null)
    .map((row) => new Date(row.activate_at as Date | string).getTime());

  return {
    keys: rows.map(
      (row) =>
        JSON.parse(encryptor.decryptString(row.jwk_ciphertext, encryptionContext(row.kid))) as JWK,
    ),
    fingerprint: rows.map((row) => `${row.kid}:${row.state}`).join(','),
    nextActivation: activations.length > 0 ? new Date(Math.min(...activations)) : undefined,
  };
}

export async function listSigningKeys(database: Queryable): Promise<SigningKeyInfo[]> {
  const rows = await database.query<KeyRow>(`SELECT * FROM signing_keys ${KEY_ORDER}, alg`);

  return rows.map(toInfo);
}

/** Moves the active key of `alg` to retired, so that a newer key can take its place. */
async function retireActive(tx: Queryable, alg: string): Promise<void> {
  await tx.query(
    `UPDATE signing_keys SET state = 'retired', retired_at = now()
     WHERE alg = $1 AND state = 'active'`,
    [alg],
  );
}

/**
 * Adds a key per algorithm. Without `activate` it is published at once and signs after
 * `delaySeconds`, so that relying apps have fetched it by then; with `activate` it signs at once,
 * or a next key already waiting is made to sign now. The key it replaces becomes retired: still
 * published, no longer signing. Returns the keys added or activated.
 */
export async function rotateSigningKeys(
  database: Database,
  encryptor: Encryptor,
  options: { activate: boolean; delaySeconds: number },
): Promise<SigningKeyInfo[]> {
  return database.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [...KEYS_LOCK]);
    const changed: string[] = [];
    for (const alg of SIGNING_ALGORITHMS) {
      const [waiting] = await tx.query<KeyRow>(
        "SELECT * FROM signing_keys WHERE alg = $1 AND state = 'next'",
        [alg],
      );
      if (waiting && !options.activate) {
        const when = new Date(waiting.activate_at ?? Date.now()).toISOString();
        throw new AppError(
          'conflict',
          `the ${alg} key ${waiting.kid} already waits to sign from ${when}; run idp keys rotate --activate to make it sign now`,
        );
      }
      if (options.activate) await retireActive(tx, alg);
      if (waiting) {
        await tx.query(
          `UPDATE signing_keys SET state = 'active', activate_at = now(), activated_at = now()
           WHERE kid = $1`,
          [waiting.kid],
        );
        changed.push(waiting.kid);
        continue;
      }
      const jwk = await createKey(alg);
      await tx.query(
        `INSERT INTO signing_keys (kid, alg, state, jwk_ciphertext, activate_at, activated_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5),
                 CASE WHEN $3 = 'active' THEN now() END)`,
        [
          jwk.kid,
          alg,
          options.activate ? 'active' : 'next',
          encryptor.encrypt(JSON.stringify(jwk), encryptionContext(jwk.kid)),
          options.activate ? 0 : options.delaySeconds,
        ],
      );
      changed.push(jwk.kid);
    }
    const rows = await tx.query<KeyRow>(
      `SELECT * FROM signing_keys WHERE kid = ANY($1::text[]) ${KEY_ORDER}`,
      [changed],
    );

    return rows.map(toInfo);
  });
}

/**
 * Applies the schedule: a next key whose time has come becomes active and the key it replaces
 * retired; a retired key is deleted once `retiredKeepSeconds` have passed, when no token it signed
 * can still be presented. Every node runs this; the lock makes one of them do each change.
 * Returns true when something changed.
 */
export async function advanceSigningKeys(
  database: Database,
  retiredKeepSeconds: number,
): Promise<boolean> {
  return database.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [...KEYS_LOCK]);
    const due = await tx.query<{ alg: string }>(
      "SELECT alg FROM signing_keys WHERE state = 'next' AND activate_at <= now()",
    );
    for (const { alg } of due) {
      await retireActive(tx, alg);
      await tx.query(
        `UPDATE signing_keys SET state = 'active', activated_at = now()
         WHERE alg = $1 AND state = 'next'`,
        [alg],
      );
    }
    const removed = await tx.query(
      `DELETE FROM signing_keys
       WHERE state = 'retired' AND retired_at < now() - make_interval(secs => $1)
       RETURNING kid`,
      [retiredKeepSeconds],
    );

    return due.length > 0 || removed.length > 0;
  });
}
