import type Provider from 'oidc-provider';
import type { AccountStore } from '../accounts/store.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../server/metrics.ts';
import type { CodeAttempts } from '../mfa/attempts.ts';
import type { SecondFactorMethod, SecondFactorPolicy } from '../mfa/policy.ts';
import type { ShortLivedStore } from '../mfa/state.ts';
import type { MfaStore } from '../mfa/store.ts';
import type { SessionStoreAdapter } from '../oidc/adapters/redis.ts';
import type { Encryptor } from '../security/encryption.ts';
import type { AuditLog } from '../security/audit.ts';
import type { RateLimiter } from '../security/rate-limit.ts';

/**
 * The state of one sign-in after its password step, kept per interaction uid: the account whose
 * password was checked in this interaction (or, in a step-up, the account of the session), and
 * the second-factor stage it has reached. Only this record lets the second step finish a login.
 */
export interface LoginStep {
  accountId: string;
  /** `code`: a TOTP or recovery code is due. `enrol`: an authenticator is being set up. `passed`:
   * the second factor passed and the user confirms a page (recovery codes) before going on. */
  stage: 'code' | 'enrol' | 'passed';
  /** True when a signed-in session only lacks the second factor, so no password was asked. */
  stepUp?: boolean;
  /** The secret being enrolled, encrypted. */
  pendingSecret?: string;
  /** The second-factor method that passed, at stage `passed`. */
  method?: SecondFactorMethod;
  /** Recovery codes left after one was used, shown at stage `passed`. */
  recoveryCodesLeft?: number;
}

/** The dependencies of the interaction steps, wired once at start-up. */
export interface InteractionDeps {
  provider: Provider;
  accounts: AccountStore;
  logger: Logger;
  /** Counters of sign-in outcomes; absent in tests that build the routes alone. */
  metrics?: Metrics;
  mfa: MfaStore;
  policy: SecondFactorPolicy;
  attempts: CodeAttempts;
  loginSteps: ShortLivedStore<LoginStep>;
  encryptor: Encryptor;
  /** Label shown in authenticator apps (IDP_TOTP_ISSUER). */
  totpIssuer: string;
  /** The session adapter class, to end the user's other sessions after an enrolment. */
  sessions: SessionStoreAdapter;
  audit: AuditLog;
  rateLimiter: RateLimiter;
}

export type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;
