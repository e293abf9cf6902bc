import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { AdapterPayload, KoaContextWithOIDC, Session } from 'oidc-provider';
import type { Logger } from '../logger.ts';
import { type AuditEntry, type AuditLog, requestFacts } from '../security/audit.ts';
import type { SessionStoreAdapter } from './adapters/redis.ts';

const LOGOUT_CONFIRM_PATH = '/session/end/confirm';

/**
 * Records a `session.ended` event when RP-initiated logout ends a session: the whole idp session
 * (scope `all`), or only the session of the app that asked (scope `app`). oidc-provider has already
 * posted the back-channel logout tokens by then. The row is written before koa sends the response.
 */
export function auditLogout(audit: AuditLog, logger: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    await next();
    if (ctx.method !== 'POST' || ctx.path !== LOGOUT_CONFIRM_PATH || ctx.status !== 303) return;
    const { oidc } = ctx as unknown as Partial<KoaContextWithOIDC>;
    // oidc-provider marks a session it destroyed, which its types leave out.
    const session = oidc?.session as (Session & { destroyed?: boolean }) | undefined;
    if (!session?.accountId) return;

    const scope = session.destroyed ? 'all' : 'app';
    const clientId = oidc?.entities.Client?.clientId ?? null;
    if (scope === 'app' && !clientId) return;
    logger.info({ accountId: session.accountId, clientId, scope }, 'session ended by logout');
    await audit.record({
      event: 'session.ended',
      accountId: session.accountId,
      clientId,
      ...requestFacts(ctx),
      detail: {
        reason: 'logout',
        scope,
        apps: Object.keys(session.authorizations ?? {}).join(' '),
      },
    });
  };
}

/** Cause of ending all of a user's sessions, as recorded in `detail.cause` of `session.ended`. */
export type RevocationCause =
  'password_changed' | 'mfa_reset' | 'authenticator_changed' | 'disabled' | 'too_many_failures';

export interface SessionEndingDeps {
  /** The session adapter class, which deletes an account's sessions, grants and tokens. */
  sessions: SessionStoreAdapter;
  /** Returns the provider that signs logout tokens, or undefined to send none. */
  provider: () => Promise<Provider | undefined>;
  audit: AuditLog;
  logger: Logger;
}

export interface SessionEnding {
  account: { id: string; username: string };
  cause: RevocationCause;
  /** A session to spare, such as the browser that made the change. */
  keepSessionId?: string;
  /** Request facts of the change, when a browser made it. */
  facts?: Pick<AuditEntry, 'ip' | 'userAgent' | 'requestId'>;
  /** Actor of a change made from the command line. */
  actor?: string;
}

interface LogoutCapable {
  backchannelLogout(sub: string, sid: string): Promise<void>;
}

/** Lists the apps of ended sessions that received the session's id (sid), once each. */
function logoutNotices(sessions: AdapterPayload[]): { clientId: string; sid: string }[] {
  const notices = new Map<string, { clientId: string; sid: string }>();
  for (const session of sessions) {
    const authorizations = (session.authorizations ?? {}) as Record<string, { sid?: unknown }>;
    for (const [clientId, { sid }] of Object.entries(authorizations)) {
      if (typeof sid === 'string') notices.set(`${clientId} ${sid}`, { clientId, sid });
    }
  }

  return [...notices.values()];
}

/**
 * Ends every session, grant and refresh token of an account in the shared store, so every node
 * reads the change at once. Then it posts a back-channel logout token to each app of those
 * sessions that registered a URI, and records one `session.ended` event. Returns how many
 * sessions and grants were deleted.
 */
export async function endAccountSessions(
  deps: SessionEndingDeps,
  ending: SessionEnding,
): Promise<number> {
  const { account, cause } = ending;
  const { ended, sessions } = await deps.sessions.revokeAccount(account.id, {
    keepSessionId: ending.keepSessionId,
  });
  const notices = logoutNotices(sessions);
  let sent = 0;
  let failed = 0;
  const provider = notices.length > 0 ? await deps.provider() : undefined;
  if (provider) {
    await Promise.all(
      notices.map(async ({ clientId, sid }) => {
        // oidc-provider's client signs and posts the logout token; its types leave that out.
        const client = (await provider.Client.find(clientId)) as
          (InstanceType<Provider['Client']> & LogoutCapable) | undefined;
        if (!client?.backchannelLogoutUri) return;
        try {
          await client.backchannelLogout(account.id, sid);
          sent += 1;
        } catch (error) {
          failed += 1;
          deps.logger.warn(
            { clientId, accountId: account.id, reason: (error as Error).message },
            'back-channel logout failed',
          );
        }
      }),
    );
  }
  deps.logger.info(
    { accountId: account.id, cause, ended, sessions: sessions.length, logoutTokens: sent },
    'sessions of the account ended',
  );
  await deps.audit.record({
    event: 'session.ended',
    accountId: account.id,
    username: account.username,
    ...ending.facts,
    detail: {
      reason: 'revoked',
      cause,
      sessions: sessions.length,
      logoutTokensSent: sent,
      logoutTokensFailed: failed,
      ...(ending.actor ? { actor: ending.actor } : {}),
    },
  });

  return ended;
}

/**
 * Ends an account's sessions after a change made in a browser, such as a new password or
 * authenticator, and records the request's address and user agent with the event. `keepSessionId`
 * spares the browser's own session. Returns how many sessions and grants were deleted.
 */
export function endSessionsFromBrowser(
  ctx: Context,
  deps: { sessions: SessionStoreAdapter; provider: Provider; audit: AuditLog; logger: Logger },
  ending: Omit<SessionEnding, 'facts' | 'actor'>,
): Promise<number> {
  return endAccountSessions(
    {
      sessions: deps.sessions,
      provider: () => Promise.resolve(deps.provider),
      audit: deps.audit,
      logger: deps.logger,
    },
    { ...ending, facts: requestFacts(ctx) },
  );
}
