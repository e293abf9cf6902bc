import { createHash } from 'node:crypto';
import type { Database, Queryable } from '../db/database.ts';
import { canonicalUsername } from '../accounts/username.ts';

/** Every audit event, with what it records. The README's table lists the same names. */
export const AUDIT_EVENTS = {
  'signin.succeeded': 'a user finished signing in (every required step passed)',
  'signin.failed': 'a sign-in step failed; detail.reason says why',
  'mfa.enrolled': 'a user set up TOTP',
  'mfa.recovery_code_used': 'a user signed in with a recovery code',
  'mfa.recovery_codes_regenerated': 'a user made a new set of recovery codes',
  'mfa.reset': 'an administrator removed a user’s TOTP and recovery codes',
  'account.locked': 'too many failures locked an account for a while',
  'account.unlocked': 'an administrator cleared an account’s failure counters and lock',
  'password.changed': 'a password was replaced',
  'user.created': 'an account was created',
  'user.disabled': 'an account was disabled',
  'user.enabled': 'an account was enabled again',
  'client.created': 'an app was registered',
  'client.updated': 'an app’s registration was changed',
  'client.deleted': 'an app was removed',
  'setting.changed': 'a server-wide setting was changed',
  'signing_key.rotated': 'a signing key was added or activated',
  'session.ended': 'a session ended; detail.reason is logout or revoked',
} as const;

export type AuditEventName = keyof typeof AUDIT_EVENTS;

/** Reason of a failed sign-in step, as recorded in `detail.reason` of `signin.failed`. */
export type SignInFailureReason =
  | 'wrong_password'
  | 'unknown_user'
  | 'disabled'
  | 'locked'
  | 'rate_limited'
  | 'wrong_code'
  | 'replayed_code';

/** Small facts about an event. Values are plain scalars so that the hash input is stable. */
export type AuditDetail = Record<string, string | number | boolean | null>;

export interface AuditEntry {
  event: AuditEventName;
  /** Defaults to success. */
  outcome?: 'success' | 'failure';
  accountId?: string | null;
  username?: string | null;
  clientId?: string | null;
  ip?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
  detail?: AuditDetail;
}

export interface AuditRecord {
  id: number;
  occurredAt: Date;
  event: string;
  outcome: 'success' | 'failure';
  accountId: string | null;
  username: string | null;
  clientId: string | null;
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
  detail: AuditDetail;
  prevHash: string;
  hash: string;
}

interface AuditRow {
  id: string | number;
  occurred_at: Date | string;
  event: string;
  outcome: 'success' | 'failure';
  account_id: string | null;
  username: string | null;
  client_id: string | null;
  ip: string | null;
  user_agent: string | null;
  request_id: string | null;
  detail: AuditDetail | string;
  prev_hash: string;
  hash: string;
}

/** The prev_hash of the first row. */
export const GENESIS_HASH = '0'.repeat(64);

/** Advisory lock that orders audit writers across nodes: "idp-audit" as two 32-bit halves. */
const AUDIT_LOCK = [0x69647000, 0x61756469] as const;

const COLUMNS =
  'id, occurred_at, event, outcome, account_id, username, client_id, ip, user_agent, request_id, detail, prev_hash, hash';

const clip = (value: string | null | undefined, length: number): string | null =>
  value === undefined || value === null || value === '' ? null : value.slice(0, length);

/** JSON with object keys sorted, so the same detail always hashes the same. */
function canonicalJson(value: AuditDetail): string {
  const sorted = Object.keys(value)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${JSON.stringify(value[key] ?? null)}`);

  return `{${sorted.join(',')}}`;
}

/**
 * Computes the hash of a row: sha256 over the previous row's hash and the row's content, with the
 * fields in a fixed order as one JSON array. A changed, removed or moved row breaks later links.
 */
export function hashRecord(record: Omit<AuditRecord, 'hash'>): string {
  const fields = scalarFields(record).map((value) =>
    value instanceof Date ? value.toISOString() : value,
  );
  const content = JSON.stringify([...fields, canonicalJson(record.detail)]);

  return createHash('sha256').update(`${record.prevHash}\n${content}`).digest('hex');
}

/** Lists the fields of a row before `detail`, in column order. */
function scalarFields(record: Omit<AuditRecord, 'hash'>) {
  return [
    record.id,
    record.occurredAt,
    record.event,
    record.outcome,
    record.accountId,
    record.username,
    record.clientId,
    record.ip,
    record.userAgent,
    record.requestId,
  ];
}

function toRecord(row: AuditRow): AuditRecord {
  return {
    id: Number(row.id),
    occurredAt: new Date(row.occurred_at),
    event: row.event,
    outcome: row.outcome,
    accountId: row.account_id,
    username: row.username,
    clientId: row.client_id,
    ip: row.ip,
    userAgent: row.user_agent,
    requestId: row.request_id,
    detail: typeof row.detail === 'string' ? (JSON.parse(row.detail) as AuditDetail) : row.detail,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

export interface AuditFilter {
  since?: Date;
  /** A username (compared case-insensitively) or an account id. */
  user?: string;
  /** An event name, or the group before the dot (`signin` matches `signin.failed`). */
  event?: string;
  /** Only rows after this id, for paging. */
  afterId?: number;
  limit?: number;
}

export type VerifyResult =
  | { ok: true; count: number; lastHash: string }
  | { ok: false; count: number; badId: number; problem: string };

const VERIFY_BATCH = 1000;

/** Writes, reads and checks the `audit_events` table. */
export class AuditLog {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  /**
   * Appends one event and resolves once it is committed, so callers await it before they respond.
   * Writers queue on an advisory lock, which keeps ids gapless and the chain in id order.
   */
  async record(entry: AuditEntry): Promise<AuditRecord> {
    return this.#db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [...AUDIT_LOCK]);
      const last = await tx.query<{ id: string | number; hash: string }>(
        'SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1',
      );
      const previous = last[0];
      const unsigned: Omit<AuditRecord, 'hash'> = {
        id: previous ? Number(previous.id) + 1 : 1,
        // Milliseconds survive the round trip through timestamptz exactly, so the hash does too.
        occurredAt: new Date(),
        event: entry.event,
        outcome: entry.outcome ?? 'success',
        accountId: entry.accountId ? entry.accountId.toLowerCase() : null,
        username: clip(entry.username?.trim(), 256),
        clientId: clip(entry.clientId, 256),
        ip: clip(entry.ip, 64),
        userAgent: clip(entry.userAgent, 512),
        requestId: clip(entry.requestId, 128),
        detail: entry.detail ?? {},
        prevHash: previous?.hash ?? GENESIS_HASH,
      };
      const record = { ...unsigned, hash: hashRecord(unsigned) };
      await tx.query(
        `INSERT INTO audit_events (${COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
        [...scalarFields(record), JSON.stringify(record.detail), record.prevHash, record.hash],
      );

      return record;
    });
  }

  /** Returns the events that match the filter, oldest first. */
  async list(filter: AuditFilter = {}, db: Queryable = this.#db): Promise<AuditRecord[]> {
    const conditions: string[] = [];
    const params: unknown[] = [];
    const param = (value: unknown) => {
      params.push(value);

      return `$${params.length}`;
    };
    if (filter.afterId !== undefined) conditions.push(`id > ${param(filter.afterId)}`);
    if (filter.since) conditions.push(`occurred_at >= ${param(filter.since)}`);
    if (filter.event) {
      conditions.push(
        filter.event.includes('.')
          ? `event = ${param(filter.event)}`
          : `event LIKE ${param(`${filter.event}.%`)}`,
      );
    }
    if (filter.user) {
      const user = filter.user.trim();
      const byId = /^[0-9a-f-]{36}$/i.test(user) ? ` OR account_id = ${param(user)}::uuid` : '';
      const canonical = param(canonicalUsername(user));
      conditions.push(
        `(lower(username) = ${canonical} OR account_id IN
          (SELECT id FROM accounts WHERE username_canonical = ${canonical})${byId})`,
      );
    }
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    const limit = filter.limit === undefined ? '' : `LIMIT ${param(filter.limit)}`;
    const rows = await db.query<AuditRow>(
      `SELECT ${COLUMNS} FROM audit_events ${where} ORDER BY id ${limit}`,
      params,
    );

    return rows.map(toRecord);
  }

  /**
   * Walks the whole chain in id order and returns the first row that does not match. That is a
   * changed row (its hash differs from the hash of its content), a broken link, or a missing id.
   */
  async verify(): Promise<VerifyResult> {
    let expectedPrev = GENESIS_HASH;
    let expectedId = 1;
    let count = 0;
    for (;;) {
      const batch = await this.list({ afterId: expectedId - 1, limit: VERIFY_BATCH });
      for (const record of batch) {
        if (record.id !== expectedId) {
          return { ok: false, count, badId: expectedId, problem: 'is missing' };
        }
        if (record.prevHash !== expectedPrev) {
          return {
            ok: false,
            count,
            badId: record.id,
            problem: 'does not link to the event before it (prev_hash differs)',
          };
        }
        const { hash, ...unsigned } = record;
        if (hashRecord(unsigned) !== hash) {
          return {
            ok: false,
            count,
            badId: record.id,
            problem: 'has been changed (its hash does not match its content)',
          };
        }
        expectedPrev = hash;
        expectedId += 1;
        count += 1;
      }
      if (batch.length < VERIFY_BATCH) return { ok: true, count, lastHash: expectedPrev };
    }
  }
}

/** Returns the request facts of an audit row: client address, user agent and request id. */
export function requestFacts(ctx: {
  ip: string;
  get(field: string): string;
  state: Record<string, unknown>;
}): Pick<AuditEntry, 'ip' | 'userAgent' | 'requestId'> {
  return {
    ip: ctx.ip || null,
    userAgent: ctx.get('user-agent') || null,
    requestId: typeof ctx.state['requestId'] === 'string' ? ctx.state['requestId'] : null,
  };
}
