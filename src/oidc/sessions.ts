import type { Context, Next } from 'koa';
import type { KoaContextWithOIDC, Session } from 'oidc-provider';
import type { Logger } from '../logger.ts';
import { type AuditLog, requestFacts } from '../security/audit.ts';

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
