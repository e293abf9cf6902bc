import type Provider from 'oidc-provider';
import type { AccountStore } from '../accounts/store.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../server/metrics.ts';

/** What the interaction steps need, wired once at start-up. */
export interface InteractionDeps {
  provider: Provider;
  accounts: AccountStore;
  logger: Logger;
  /** Counters of sign-in outcomes; absent in tests that build the routes alone. */
  metrics?: Metrics;
}

export type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;
