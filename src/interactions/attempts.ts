import { setTimeout as sleep } from 'node:timers/promises';
import type { Context } from 'koa';
import { requestFacts, type SignInFailureReason } from '../security/audit.ts';
import type { GateDecision } from '../security/rate-limit.ts';
import type { InteractionDeps } from './context.ts';

/** One checked sign-in step: who it is for and where it came from. */
export interface StepFacts {
  /** `account_page`: the current password and code that the account page requests before a change. */
  step: 'password' | 'code' | 'account_page';
  /** Name that identifies the account to the limiter: the typed username, or the account's own. */
  username: string;
  account?: { id: string; username: string };
  clientId?: string;
  /** The interaction uid, or the scope of the account page, for the log. */
  interaction: string;
}

/** Dependencies of a checked step: the limiter, the audit log, the log and optional metrics. */
export type StepDeps = Pick<InteractionDeps, 'audit' | 'rateLimiter' | 'logger' | 'metrics'>;

const REJECTION_REASON: Record<GateDecision, SignInFailureReason | undefined> = {
  proceed: undefined,
  bypass: undefined,
  locked: 'locked',
  throttled: 'rate_limited',
  ip_blocked: 'rate_limited',
};

/**
 * Runs `check` under the failed-attempt limiter and records failures in the audit log before the
 * caller responds. `check` resolves to the reason of a failure, or undefined when the password or
 * code is right. Returns true when the step passed; the caller counts the success in metrics.
 */
export async function runCheckedStep(
  ctx: Context,
  deps: StepDeps,
  facts: StepFacts,
  check: () => Promise<SignInFailureReason | undefined>,
): Promise<boolean> {
  const log = deps.logger.child({ requestId: ctx.state.requestId, interaction: facts.interaction });
  const common = {
    accountId: facts.account?.id ?? null,
    // A name that matches no account is left out: people type their password into the username
    // field by mistake, and audit rows cannot be deleted.
    username: facts.account?.username ?? null,
    clientId: facts.clientId ?? null,
    ...requestFacts(ctx),
  };
  const recordLock = async () => {
    const { lockMs } = deps.rateLimiter.policy;
    log.warn({ accountId: facts.account?.id }, 'account locked after repeated failures');
    deps.metrics?.accountLocks.inc();
    await deps.audit.record({
      event: 'account.locked',
      ...common,
      detail: { step: facts.step, lockSeconds: Math.round(lockMs / 1000) },
    });
  };
  const recordFailure = async (reason: SignInFailureReason, extra: Record<string, string> = {}) => {
    log.info({ accountId: facts.account?.id, step: facts.step, reason }, 'sign-in step failed');
    // The password step counts one outcome for every failure: separate counts on a scrapeable
    // page would tell which usernames exist. The reason is in the log and the audit row.
    counter?.inc({ outcome: facts.step === 'password' ? 'failed' : reason });
    await deps.audit.record({
      event: 'signin.failed',
      outcome: 'failure',
      ...common,
      detail: { step: facts.step, reason, ...extra },
    });
  };

  const counter = {
    password: deps.metrics?.signIns,
    code: deps.metrics?.secondFactor,
    account_page: undefined,
  }[facts.step];
  const attempt = await deps.rateLimiter.begin(facts.username, ctx.ip);
  if (attempt.newlyLocked) await recordLock();
  const rejection = REJECTION_REASON[attempt.decision];
  if (rejection) {
    await recordFailure(rejection, { limit: attempt.decision });

    return false;
  }
  if (attempt.waitMs > 0) await sleep(attempt.waitMs);

  const reason = await check();
  if (reason) {
    if (await deps.rateLimiter.failed(attempt)) await recordLock();
    await recordFailure(reason);

    return false;
  }
  await deps.rateLimiter.succeeded(attempt);

  return true;
}
