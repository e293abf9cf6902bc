import type { Adapter, AdapterPayload } from 'oidc-provider';

/**
 * Records that live for minutes, keyed by an id (an interaction uid, a session uid), kept where
 * oidc-provider keeps its sessions: Redis, or this process without Redis. Any node can so go on
 * with a step that another node began.
 */
export class ShortLivedStore<T extends object> {
  readonly #adapter: Adapter;

  /** `adapter` is the session store's adapter of a model name of this store's own. */
  constructor(adapter: Adapter) {
    this.#adapter = adapter;
  }

  async find(id: string): Promise<T | undefined> {
    return (await this.#adapter.find(id)) as T | undefined;
  }

  async save(id: string, value: T, ttlSeconds: number): Promise<void> {
    await this.#adapter.upsert(id, value as AdapterPayload, Math.max(1, Math.floor(ttlSeconds)));
  }

  async delete(id: string): Promise<void> {
    await this.#adapter.destroy(id);
  }
}
