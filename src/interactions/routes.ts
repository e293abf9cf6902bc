import Router from '@koa/router';
import type { Context } from 'koa';
import { errors } from 'oidc-provider';
import { AppError } from '../errors.ts';
import { formBody, noStore } from '../server/forms.ts';
import { grantConsent, renderConsent } from './consent.ts';
import { EXPIRED, type InteractionDeps, type InteractionDetails } from './context.ts';
import { renderLogin, submitLogin } from './login.ts';
import {
  type ClientInfo,
  loginStepPage,
  renderCodePage,
  requireStep,
  submitContinue,
  submitEnrolment,
  submitRecoveryCode,
  submitTotp,
} from './second-factor.ts';

/**
 * Loads the interaction that the browser's interaction cookie names and checks that it is the one
 * in the URL, so a form only works in the browser that started the sign-in. An interaction that
 * already has a result (finished, or stopped after too many codes) takes no more input.
 */
async function loadInteraction(ctx: Context, deps: InteractionDeps): Promise<InteractionDetails> {
  try {
    const details = await deps.provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== ctx.params.uid || details.result) {
      throw new AppError('interaction_expired', EXPIRED);
    }

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

function toClientInfo(client: Awaited<ReturnType<typeof clientOf>>): ClientInfo {
  return {
    clientId: client.clientId,
    name: client.clientName,
    requires2fa: client['idp_require_2fa'] === true,
  };
}

async function clientInfoOf(deps: InteractionDeps, details: InteractionDetails) {
  return toClientInfo(await clientOf(deps, details));
}

/** Loads the interaction of a form post of the login prompt and the client it is for. */
async function loginPost(ctx: Context, deps: InteractionDeps) {
  const details = await loadInteraction(ctx, deps);
  requirePrompt(details, 'login');

  return { details, client: await clientInfoOf(deps, details) };
}

function requirePrompt(details: InteractionDetails, name: string): void {
  if (details.prompt.name !== name) {
    throw new AppError('interaction_expired', EXPIRED);
  }
}

/**
 * Routes of the sign-in steps that oidc-provider hands over to, in order: the password, the second
 * factor (a TOTP code, a recovery code, or enrolment of an authenticator), consent, and abort.
 */
export function createInteractionRouter(deps: InteractionDeps): Router {
  const router = new Router({ prefix: '/interaction/:uid' });
  router.use(noStore);

  router.get('/', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    const client = await clientOf(deps, details);
    switch (details.prompt.name) {
      case 'login':
        await loginStepPage(ctx, deps, details, toClientInfo(client), () =>
          renderLogin(ctx, details, client.clientName),
        );
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
    const { details, client } = await loginPost(ctx, deps);
    await submitLogin(ctx, deps, details, client);
  });

  router.post('/totp', formBody, async (ctx) => {
    const { details, client } = await loginPost(ctx, deps);
    await submitTotp(ctx, deps, details, client);
  });

  router.get('/recovery', async (ctx) => {
    const details = await loadInteraction(ctx, deps);
    requirePrompt(details, 'login');
    await requireStep(deps, details, 'code');
    renderCodePage(ctx, details, await clientInfoOf(deps, details), 'recovery');
  });

  router.post('/recovery', formBody, async (ctx) => {
    const { details, client } = await loginPost(ctx, deps);
    await submitRecoveryCode(ctx, deps, details, client);
  });

  router.post('/enrol', formBody, async (ctx) => {
    const { details, client } = await loginPost(ctx, deps);
    await submitEnrolment(ctx, deps, details, client);
  });

  router.post('/continue', formBody, async (ctx) => {
    const { details } = await loginPost(ctx, deps);
    await submitContinue(ctx, deps, details);
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
    const details = await loadInteraction(ctx, deps);
    await deps.loginSteps.delete(details.uid);
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
