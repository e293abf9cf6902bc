import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { ClientStore } from './clients.ts';

/**
 * Seconds a node keeps a client read from Postgres. An updated or deleted client takes effect on
 * every running node within this time.
 */
export const CLIENT_CACHE_SECONDS = 5;

/** Maximum number of clients kept at once; the oldest entry goes first when a new one needs room. */
const CLIENT_CACHE_SIZE = 500;

interface CacheEntry {
  expires: number;
  metadata: Promise<AdapterPayload | undefined>;
}

/**
 * oidc-provider adapter of the Client model, read from Postgres. Clients are registered with the
 * `idp clients` commands, so every write method rejects.
 *
 * Every token, introspection and userinfo request looks its client up, so found clients are
 * kept for CLIENT_CACHE_SECONDS, and concurrent lookups of one client share one query.
 */
export class ClientAdapter implements Adapter {
  readonly #clients: ClientStore;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #now: () => number;

  constructor(clients: ClientStore, now: () => number = Date.now) {
    this.#clients = clients;
    this.#now = now;
  }

  find(id: string): Promise<AdapterPayload | undefined> {
    const now = this.#now();
    const cached = this.#cache.get(id);
    if (cached && cached.expires > now) return cached.metadata;

    const metadata = this.#clients.findMetadata(id) as Promise<AdapterPayload | undefined>;
    const entry = { expires: now + CLIENT_CACHE_SECONDS * 1000, metadata };
    this.#cache.delete(id);
    this.#cache.set(id, entry);
    if (this.#cache.size > CLIENT_CACHE_SIZE) {
      this.#cache.delete(this.#cache.keys().next().value as string);
    }
    // Only found clients stay: a client registered a moment after a miss works at once, and a
    // failed query is retried by the next request.
    metadata.then(
      (found) => {
        if (!found && this.#cache.get(id) === entry) this.#cache.delete(id);
      },
      () => {
        if (this.#cache.get(id) === entry) this.#cache.delete(id);
      },
    );

    return metadata;
  }

  upsert(): Promise<void> {
    return Promise.reject(new Error('clients are registered with `idp clients create`'));
  }

  findByUid(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  findByUserCode(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  destroy(): Promise<void> {
    return Promise.reject(new Error('clients are deleted with `idp clients delete`'));
  }

  consume(): Promise<void> {
    return Promise.resolve();
  }

  revokeByGrantId(): Promise<void> {
    return Promise.resolve();
  }
}
