import type { Context } from 'koa';
import { getDummyHash, hashPassword, needsRehash, verifyPassword } from '../accounts/password.ts';
import { MAX_PASSWORD_LENGTH } from '../accounts/password.ts';
import { en } from '../views/messages/en.ts';
import { pageTranslator, renderPage } from '../views/render.ts';
import { runCheckedStep } from './attempts.ts';
import type { InteractionDeps, InteractionDetails } from './context.ts';
import { afterPassword, type ClientInfo } from './second-factor.ts';

/** The one message, in English, for an unknown user, a wrong password and a disabled account. */
export const INVALID_CREDENTIALS = en['login.invalid'];

export function renderLogin(
  ctx: Context,
  details: InteractionDetails,
  clientName: string | undefined,
  extra: { error?: string; username?: string } = {},
): void {
  ctx.type = 'html';
  ctx.body = renderPage(ctx, 'login', {
    title: 'login.title',
    uid: details.uid,
    clientName,
    ...extra,
  });
}

function field(body: unknown, name: string): string {
  const value = (body as Record<string, unknown> | undefined)?.[name];

  return typeof value === 'string' ? value : '';
}

/**
 * Checks the username and password of the login form under the failed-attempt limiter. Unknown
 * users are verified against a dummy hash and disabled users against their own, so every checked
 * failure takes the time of one argon2 check and shows the same message, as does a locked account.
 * A correct password goes on to the second step when it applies.
 */
export async function submitLogin(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  client: ClientInfo,
): Promise<void> {
  const clientName = client.name;
  const username = field(ctx.request.body, 'username').slice(0, 200);
  const password = field(ctx.request.body, 'password').slice(0, MAX_PASSWORD_LENGTH);
  const clientId = String(details.params.client_id);
  const log = deps.logger.child({ requestId: ctx.state.requestId, interaction: details.uid });

  const account = username.trim() === '' ? undefined : await deps.accounts.findByUsername(username);
  const passed = await runCheckedStep(
    ctx,
    deps,
    { step: 'password', username, account, clientId, interaction: details.uid },
    async () => {
      const storedHash = account?.passwordHash ?? (await getDummyHash());
      const passwordOk = (await verifyPassword(storedHash, password)) && password !== '';
      if (!account) return 'unknown_user';
      if (account.disabled) return 'disabled';

      return passwordOk ? undefined : 'wrong_password';
    },
  );
  if (!passed || !account) {
    ctx.status = 400;
    const error = pageTranslator(ctx).t('login.invalid');
    renderLogin(ctx, details, clientName, { error, username });

    return;
  }

  if (needsRehash(account.passwordHash)) {
    await deps.accounts.replaceHash(account.id, account.passwordHash, await hashPassword(password));
    log.info({ accountId: account.id }, 'password hash upgraded to current parameters');
  }
  log.info({ accountId: account.id, client: clientId }, 'password accepted');
  deps.metrics?.signIns.inc({ outcome: 'success' });
  await afterPassword(ctx, deps, details, client, account.id);
}
