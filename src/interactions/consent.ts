import type { Context } from 'koa';
import type { AccountStore } from '../accounts/store.ts';
import { renderPage } from '../views/render.ts';
import type { InteractionDeps, InteractionDetails } from './context.ts';

/** Scopes that the consent page describes, each by its catalogue text `scope.NAME`. */
const DESCRIBED_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);

/**
 * Creates or extends the grant that the consent prompt asks for and finishes the interaction.
 * Used directly for the operator's own apps, and after "Allow" for apps registered with consent.
 */
export async function grantConsent(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
): Promise<void> {
  const { provider } = deps;
  const accountId = details.session?.accountId;
  const clientId = details.params.client_id as string;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId });
  if (!grant) throw new Error('grant of the interaction not found');

  const missing = details.prompt.details as {
    missingOIDCScope?: string[];
    missingOIDCClaims?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();

  await provider.interactionFinished(
    ctx.req,
    ctx.res,
    { consent: { grantId } },
    { mergeWithLastSubmission: true },
  );
  ctx.respond = false;
}

export async function renderConsent(
  ctx: Context,
  accounts: AccountStore,
  details: InteractionDetails,
  clientName: string,
): Promise<void> {
  const account = await accounts.findById(details.session?.accountId ?? '');
  const scopes = String(details.params.scope ?? 'openid').split(' ');
  ctx.type = 'html';
  ctx.body = renderPage(ctx, 'consent', {
    title: 'consent.title',
    uid: details.uid,
    clientName,
    username: account?.username ?? '',
    items: scopes.filter((scope) => DESCRIBED_SCOPES.has(scope)).map((scope) => `scope.${scope}`),
  });
}
