import type { Adapter, AdapterPayload } from 'oidc-provider';
import { ShortCache } from '../short-cache.ts';
import type { ClientStore } from './clients.ts';

/**
 * Seconds a node keeps a client read from Postgres. An updated or deleted client takes effect on
 * every running node within this time.
 */
export const CLIENT_CACHE_SECONDS = 5;

/** Maximum number of clients kept at once; the oldest entry goes first when a new one needs room. */
const CLIENT_CACHE_SIZE = 500;

/**
 * oidc-provider adapter of the Client model, read from Postgres. Clients are registered with the
 * `idp clients` commands, so every write method rejects.
 *
 * Every token, introspection and userinfo request looks its client up, so found clients are
 * kept for CLIENT_CACHE_SECONDS, and concurrent lookups of one client share one query.
 */
export class ClientAdapter implements Adapter {
  readonly #clients: ClientStore;
  readonly #cache: ShortCache<AdapterPayload>;

  constructor(clients: ClientStore, now: () => number = Date.now) {
    this.#clients = clients;
    this.#cache = new ShortCache({ seconds: CLIENT_CACHE_SECONDS, size: CLIENT_CACHE_SIZE, now });
  }

  find(id: string): Promise<AdapterPayload | undefined> {
    return this.#cache.get(
      id,
      () => this.#clients.findMetadata(id) as Promise<AdapterPayload | undefined>,
    );
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
