import type { Logger } from '../logger.ts';
import type { AttemptCounter } from '../security/attempts.ts';

/** Code attempts allowed in one scope (one sign-in interaction, or one /account session). */
export const MAX_CODE_ATTEMPTS = 5;

export type CodeKind = 'totp' | 'recovery' | 'enrolment';

export interface WrongCodeEvent {
  accountId: string;
  kind: CodeKind;
  /** `replayed`: a valid code of a time step that was already used. */
  reason: 'wrong' | 'replayed';
  /** The interaction uid or `account:<session uid>` the attempt belongs to. */
  scope: string;
  clientId?: string;
  requestId?: string;
  ip?: string;
}

/**
 * Counts second-factor attempts. Every code check first takes an attempt, so parallel guesses
 * cannot get more than MAX_CODE_ATTEMPTS checks in one scope. The account-wide lock counts
 * sign-in codes and account-page checks on top of this, through `runCheckedStep`.
 */
export class CodeAttempts {
  readonly #counter: AttemptCounter;
  readonly #logger: Logger;

  constructor(counter: AttemptCounter, logger: Logger) {
    this.#counter = counter;
    this.#logger = logger;
  }

  /**
   * Takes one attempt of a scope that lives `ttlSeconds`. `allowed` is false once the scope has
   * used up its attempts; `last` is true for the final allowed one.
   */
  async take(scope: string, ttlSeconds: number): Promise<{ allowed: boolean; last: boolean }> {
    const count = await this.#counter.increment(`code:${scope}`, ttlSeconds);

    return { allowed: count <= MAX_CODE_ATTEMPTS, last: count >= MAX_CODE_ATTEMPTS };
  }

  async clear(scope: string): Promise<void> {
    await this.#counter.reset(`code:${scope}`);
  }

  /**
   * Logs a wrong code that does not count toward the account's lock: the confirmation code of a
   * new authenticator on the account page, whose secret only that session knows.
   */
  async recordWrongCode(event: WrongCodeEvent): Promise<void> {
    this.#logger.info(
      {
        accountId: event.accountId,
        kind: event.kind,
        reason: event.reason === 'replayed' ? 'replayed code' : 'wrong code',
        scope: event.scope,
        client: event.clientId,
        requestId: event.requestId,
        ip: event.ip,
      },
      'second factor failed',
    );
  }
}
