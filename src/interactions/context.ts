import type Provider from 'oidc-provider';
import type { AccountStore } from '../accounts/store.ts';
import type { Logger } from '../logger.ts';

/** What the interaction steps need, wired once at start-up. */
export interface InteractionDeps {
  provider: Provider;
  accounts: AccountStore;
  logger: Logger;
}

export type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;
