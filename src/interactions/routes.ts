import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import { errors } from 'oidc-provider';
import { AppError } from '../errors.ts';
import { grantConsent, renderConsent } from './consent.ts';
import type { InteractionDeps, InteractionDetails } from './context.ts';
import { renderLogin, submitLogin } from './login.ts';

const EXPIRED =
  'This sign-in page has expired or was opened in another browser. Go back to the app and sign in again.';

const formBody = bodyParser({
  enableTypes: ['form'],
  formLimit: '16kb',
  onError: (error) => {
    if ((error as { status?: number }).status === 413) {
      throw new AppError('payload_too_large', 'The form is too large. Go back and try again.');
    }
    throw new AppError('invalid_input', 'The form could not be read. Go back and submit it again.');
  },
});

/**
 * Loads the interaction that the browser's interaction cookie names and checks that it is the one
 * in the URL, so a form only works in the browser that started the sign-in.
 */
async function loadInteraction(ctx: Context, deps: InteractionDeps): Promise<InteractionDetails> {
  try {
    const details = await deps.provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== ctx.params.uid) throw new AppError('interaction_expired', EXPIRED);

    return details;
  } catch (error) {
    if (error instanceof errors.SessionNotFound) {
      throw new AppError('interaction_expired', EXPIRED, { cause: error });
    }
    throw error;
  }
}

async function clientOf(deps: InteractionDeps, details: InteractionDetails) {
  const client = await deps.provider.Client.find(String(details.params.client_id));
  if (!client) throw new AppError('not_found', 'The app that sent you here is not registered.');

  return client;
}

function requirePrompt(details: InteractionDetails, name: string): void {
  if (details.prompt.name !== name) {
    throw new AppError('interaction_expired', EXPIRED);
  }
}

async function noStore(ctx: Context, next: Next): Promise<void> {
  ctx.set('cache-control', 'no-store');
  ctx.set('pragma', 'no-cache');
  await next();
}

/** Routes of the sign-in steps that oidc-provider hands over to: login, consent and abort. */
export function createInteractionRouter(deps: InteractionDeps): Router {
  const router = new Router({ prefix: '/interaction/:uid' });
  router.use(noStore);

  router.get('/', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    const client = await clientOf(deps, details);
    switch (details.prompt.name) {
      case 'login':
        renderLogin(ctx, details, client.clientName);
        break;
      case 'consent':
        if (client['idp_consent'] === true) {
          await renderConsent(ctx, deps.accounts, details, client.clientName ?? client.clientId);
        } else {
          await grantConsent(ctx, deps, details);
        }
        break;
      default:
        throw new AppError('interaction_expired', EXPIRED);
    }
  });

  router.post('/login', formBody, async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    requirePrompt(details, 'login');
    const client = await clientOf(deps, details);
    await submitLogin(ctx, deps, details, client.clientName);
  });

  router.post('/consent', formBody, async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    requirePrompt(details, 'consent');
    const decision = (ctx.request.body as Record<string, unknown> | undefined)?.['decision'];
    if (decision === 'allow') {
      await grantConsent(ctx, deps, details);

      return;
    }
    await deps.provider.interactionFinished(
      ctx.req,
      ctx.res,
      { error: 'access_denied', error_description: 'The user denied access.' },
      { mergeWithLastSubmission: false },
    );
    ctx.respond = false;
  });

  router.get('/abort', async (ctx) => {
    await loadInteraction(ctx, deps);
    await deps.provider.interactionFinished(
      ctx.req,
      ctx.res,
      { error: 'access_denied', error_description: 'The user cancelled the sign-in.' },
      { mergeWithLastSubmission: false },
    );
    ctx.respond = false;
  });

  return router;
}
