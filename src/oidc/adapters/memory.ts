import type { Adapter, AdapterPayload } from 'oidc-provider';
import {
  ACCOUNT_MODELS,
  type EndedSessions,
  GRANTABLE_MODELS,
  SINGLE_USE_MODELS,
  secondUse,
  type SessionStoreAdapter,
} from './redis.ts';

export interface MemoryAdapterOptions {
  // Clock in epoch milliseconds, replaceable so that tests can move time forward.
  now?: () => number;
}

interface Entry<V> {
  value: V;
  expiresAt: number; // epoch ms, or Infinity when stored without expiresIn
}

interface StoredRecord {
  // Kept as JSON so callers never share objects with the store, as with Redis.
  json: string;
  model: string;
  id: string;
}

const SWEEP_INTERVAL_MS = 60_000;

class ExpiringMap<V> {
  readonly #entries = new Map<string, Entry<V>>();

  get(key: string, now: number): V | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  entry(key: string, now: number): Entry<V> | undefined {
    return this.get(key, now) === undefined ? undefined : this.#entries.get(key);
  }

  set(key: string, value: V, expiresAt: number): void {
    this.#entries.set(key, { value, expiresAt });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  sweep(now: number): void {
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) this.#entries.delete(key);
    }
  }
}

// Same keys and rules as the Redis adapter, kept in this process. Each process has its
// own store, so use it for a single node or for tests.
export function createMemoryAdapter(options: MemoryAdapterOptions = {}): SessionStoreAdapter {
  const now = options.now ?? Date.now;
  const records = new ExpiringMap<StoredRecord>();
  // Index key -> record id, for uid and userCode lookups.
  const indexes = new ExpiringMap<string>();
  // Grant id -> record keys issued under it.
  const grants = new ExpiringMap<Set<string>>();
  // Account id -> keys of its Session and Grant records.
  const accounts = new ExpiringMap<Set<string>>();
  let lastSweep = now();

  // Sweeping on writes keeps the store bounded without a timer to clean up.
  function maybeSweep(at: number): void {
    if (at - lastSweep < SWEEP_INTERVAL_MS) return;
    lastSweep = at;
    records.sweep(at);
    indexes.sweep(at);
    grants.sweep(at);
    accounts.sweep(at);
  }

  const uidKey = (model: string, uid: string) => `uid:${model}:${uid}`;
  const userCodeKey = (model: string, code: string) => `userCode:${model}:${code}`;

  function forget(key: string, record: StoredRecord, at: number): void {
    const payload = JSON.parse(record.json) as AdapterPayload;
    if (record.model === 'Session' && typeof payload.uid === 'string') {
      const k = uidKey(record.model, payload.uid);
      if (indexes.get(k, at) === record.id) indexes.delete(k);
    }
    if (typeof payload.userCode === 'string') {
      const k = userCodeKey(record.model, payload.userCode);
      if (indexes.get(k, at) === record.id) indexes.delete(k);
    }
    if (typeof payload.grantId === 'string') {
      const members = grants.get(payload.grantId, at);
      members?.delete(key);
      if (members?.size === 0) grants.delete(payload.grantId);
    }
    if (ACCOUNT_MODELS.has(record.model) && typeof payload.accountId === 'string') {
      const members = accounts.get(payload.accountId, at);
      members?.delete(key);
      if (members?.size === 0) accounts.delete(payload.accountId);
    }
  }

  // Adds a key to an index set that lives as long as its longest-lived member.
  function addToIndex(
    index: ExpiringMap<Set<string>>,
    name: string,
    key: string,
    expiresAt: number,
    at: number,
  ): void {
    const entry = index.entry(name, at);
    const members = entry?.value ?? new Set<string>();
    members.add(key);
    index.set(name, members, Math.max(entry?.expiresAt ?? 0, expiresAt));
  }

  function deleteRecord(key: string, at: number): void {
    const record = records.get(key, at);
    if (!record) return;
    records.delete(key);
    forget(key, record, at);
  }

  function revokeGrant(grantId: string, at: number): void {
    const members = grants.get(grantId, at);
    grants.delete(grantId);
    for (const key of members ?? []) deleteRecord(key, at);
  }

  return class MemoryAdapter implements Adapter {
    readonly model: string;

    constructor(model: string) {
      // Clients are stored in Postgres, so a Client model here means wrong wiring.
      if (model === 'Client') {
        throw new TypeError(
          'the memory adapter does not store the Client model: pass oidc-provider a factory that routes Client to the Postgres adapter',
        );
      }
      this.model = model;
    }

    #key(id: string): string {
      return `${this.model}:${id}`;
    }

    #lookup(indexKey: string): AdapterPayload | undefined {
      const id = indexes.get(indexKey, now());
      return id === undefined ? undefined : this.#read(id);
    }

    #read(id: string): AdapterPayload | undefined {
      const record = records.get(this.#key(id), now());
      return record && (JSON.parse(record.json) as AdapterPayload);
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const at = now();
      maybeSweep(at);
      const expiresAt =
        typeof expiresIn === 'number' && Number.isFinite(expiresIn)
          ? at + expiresIn * 1000
          : Infinity;
      const key = this.#key(id);
      records.set(key, { json: JSON.stringify(payload), model: this.model, id }, expiresAt);

      if (this.model === 'Session' && payload.uid) {
        indexes.set(uidKey(this.model, payload.uid), id, expiresAt);
      }
      if (payload.userCode) {
        indexes.set(userCodeKey(this.model, payload.userCode), id, expiresAt);
      }
      if (GRANTABLE_MODELS.has(this.model) && payload.grantId) {
        addToIndex(grants, payload.grantId, key, expiresAt, at);
      }
      if (ACCOUNT_MODELS.has(this.model) && typeof payload.accountId === 'string') {
        addToIndex(accounts, payload.accountId, key, expiresAt, at);
      }
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      return this.#read(id);
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const payload = this.#lookup(uidKey(this.model, uid));
      // An index left behind by an overwritten record must not resolve.
      return payload?.uid === uid ? payload : undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const payload = this.#lookup(userCodeKey(this.model, userCode));
      return payload?.userCode === userCode ? payload : undefined;
    }

    async consume(id: string): Promise<void> {
      const at = now();
      const key = this.#key(id);
      const entry = records.entry(key, at);
      // The caller found the record moments before, so a missing one was revoked meanwhile or expired.
      if (!entry && SINGLE_USE_MODELS.has(this.model)) throw secondUse(this.model);
      if (!entry) return;
      const payload = JSON.parse(entry.value.json) as AdapterPayload;
      if (payload.consumed && SINGLE_USE_MODELS.has(this.model)) {
        // A second use: revoke the grant as the Redis adapter's script does.
        deleteRecord(key, at);
        if (typeof payload.grantId === 'string') {
          revokeGrant(payload.grantId, at);
          deleteRecord(`Grant:${payload.grantId}`, at);
        }
        throw secondUse(this.model);
      }
      payload.consumed = Math.floor(at / 1000);
      records.set(key, { ...entry.value, json: JSON.stringify(payload) }, entry.expiresAt);
    }

    async destroy(id: string): Promise<void> {
      deleteRecord(this.#key(id), now());
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      revokeGrant(grantId, now());
    }

    static async revokeByAccountId(
      accountId: string,
      options: { keepSessionId?: string } = {},
    ): Promise<number> {
      return (await MemoryAdapter.revokeAccount(accountId, options)).ended;
    }

    static async revokeAccount(
      accountId: string,
      options: { keepSessionId?: string } = {},
    ): Promise<EndedSessions> {
      const at = now();
      const keep = new Set<string>();
      if (options.keepSessionId) {
        const sessionKey = `Session:${options.keepSessionId}`;
        keep.add(sessionKey);
        const session = records.get(sessionKey, at);
        const authorizations = session
          ? ((JSON.parse(session.json) as AdapterPayload).authorizations ?? {})
          : {};
        for (const entry of Object.values(
          authorizations as Record<string, { grantId?: unknown }>,
        )) {
          if (typeof entry.grantId === 'string') keep.add(`Grant:${entry.grantId}`);
        }
      }
      const members = accounts.get(accountId, at) ?? new Set<string>();
      const sessions: AdapterPayload[] = [];
      let ended = 0;
      for (const key of [...members]) {
        if (keep.has(key)) continue;
        members.delete(key);
        const record = records.get(key, at);
        if (!record || (JSON.parse(record.json) as AdapterPayload).accountId !== accountId)
          continue;
        records.delete(key);
        forget(key, record, at);
        if (record.model === 'Grant') revokeGrant(record.id, at);
        if (record.model === 'Session') sessions.push(JSON.parse(record.json) as AdapterPayload);
        ended += 1;
      }
      if (members.size === 0) accounts.delete(accountId);

      return { ended, sessions };
    }
  };
}
