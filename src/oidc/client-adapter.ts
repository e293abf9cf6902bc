import type { Adapter, AdapterPayload } from 'oidc-provider';
import type { ClientStore } from './clients.ts';

/**
 * oidc-provider adapter of the Client model, read from Postgres. Clients are registered with the
 * `idp clients` commands, so every write method rejects.
 */
export class ClientAdapter implements Adapter {
  readonly #clients: ClientStore;

  constructor(clients: ClientStore) {
    this.#clients = clients;
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return (await this.#clients.findMetadata(id)) as AdapterPayload | undefined;
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
