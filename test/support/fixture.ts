import type * as client from 'openid-client';
import type { Account } from '../../src/accounts/store.ts';
import type { ClientInput } from '../../src/oidc/clients.ts';
import { createTestClient, startTestIdp, type TestIdp, type TestIdpOptions } from './idp.ts';
import { discoverRp } from './rp.ts';

/** A client registered at the test idp, with its relying-party configuration. */
export type TestRp = Awaited<ReturnType<typeof createTestClient>> & {
  config: client.Configuration;
};

/** The fields of a test account, as AccountStore.create takes them. */
export type TestUserInput = Parameters<TestIdp['accounts']['create']>[0];

export interface IdpFixtureOptions<ClientName extends string, UserName extends string> {
  /** Options of the idp itself, such as its key type, env or server options. */
  idp?: TestIdpOptions;
  /** Clients to register by name, each with its overrides of createTestClient's defaults. */
  clients?: Record<ClientName, Partial<ClientInput>>;
  /** Accounts to create by name. */
  users?: Record<UserName, TestUserInput>;
}

export interface IdpFixture<ClientName extends string = string, UserName extends string = string> {
  idp: TestIdp;
  clients: Record<ClientName, TestRp>;
  users: Record<UserName, Account>;
  /** Closes the idp, which also drops its database and Redis keys. */
  close(): Promise<void>;
}

/**
 * Starts a test idp, registers each client with a relying-party configuration that openid-client
 * discovers (client_secret_basic authentication), then creates each user. The idp is closed again
 * when a step after its start fails.
 */
export async function openIdpFixture<
  ClientName extends string = never,
  UserName extends string = never,
>(
  options: IdpFixtureOptions<ClientName, UserName> = {},
): Promise<IdpFixture<ClientName, UserName>> {
  const idp = await startTestIdp(options.idp);
  try {
    const clients: Record<string, TestRp> = {};
    for (const [name, overrides] of Object.entries<Partial<ClientInput>>(options.clients ?? {})) {
      const app = await createTestClient(idp, overrides);
      const config = await discoverRp(idp, app.clientId, app.clientSecret);
      clients[name] = { ...app, config };
    }
    const users: Record<string, Account> = {};
    for (const [name, input] of Object.entries<TestUserInput>(options.users ?? {})) {
      users[name] = await idp.accounts.create(input);
    }

    return {
      idp,
      clients: clients as Record<ClientName, TestRp>,
      users: users as Record<UserName, Account>,
      close: () => idp.close(),
    };
  } catch (error) {
    await idp.close();
    throw error;
  }
}
