import Router from '@koa/router';
import type { Context } from 'koa';
import { errors } from 'oidc-provider';
import { pageError } from '../errors.ts';
import { ACCOUNT_CLIENT_ID } from '../oidc/clients.ts';
import { formBody, noStore } from '../server/forms.ts';
import { pageTranslator } from '../views/render.ts';
import { grantConsent, renderConsent } from './consent.ts';
import type { InteractionDeps, InteractionDetails } from './context.ts';
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

/** The error for a sign-in page that no longer matches a live interaction in this browser. */
const expired = (cause?: unknown) => pageError('interaction_expired', 'error.expired', { cause });

/**
 * Loads the interaction that the browser's interaction cookie names and checks that it is the one
 * in the URL, so a form only works in the browser that started the sign-in. An interaction that
 * already has a result (finished, or stopped after too many codes) takes no more input.
 */
async function loadInteraction(ctx: Context, deps: InteractionDeps): Promise<InteractionDetails> {
  try {
    const details = await deps.provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== ctx.params.uid || details.result) throw expired();
    // The pages of this sign-in speak the language the app asked for, if it asked.
    const uiLocales = details.params['ui_locales'];
    if (typeof uiLocales === 'string') ctx.state.uiLocales = uiLocales;

    return details;
  } catch (error) {
    if (error instanceof errors.SessionNotFound) {
      throw expired(error);
    }
    throw error;
  }
}

async function clientOf(deps: InteractionDeps, details: InteractionDetails) {
  const client = await deps.provider.Client.find(String(details.params.client_id));
  if (!client) {
    throw pageError('not_found', 'error.unknownClient');
  }

  return client;
}

type Client = Awaited<ReturnType<typeof clientOf>>;

/** Returns the name that the pages show for a client; idp's account page has a translated one. */
function displayName(ctx: Context, client: Client): string | undefined {
  return client.clientId === ACCOUNT_CLIENT_ID
    ? pageTranslator(ctx).t('account.clientName')
    : client.clientName;
}

function toClientInfo(ctx: Context, client: Client): ClientInfo {
  return {
    clientId: client.clientId,
    name: displayName(ctx, client),
    requires2fa: client['idp_require_2fa'] === true,
  };
}

async function clientInfoOf(ctx: Context, deps: InteractionDeps, details: InteractionDetails) {
  return toClientInfo(ctx, await clientOf(deps, details));
}

/** Loads the interaction of a form post of the login prompt and the client it is for. */
async function loginPost(ctx: Context, deps: InteractionDeps) {
  const details = await loadInteraction(ctx, deps);
  requirePrompt(details, 'login');

  return { details, client: await clientInfoOf(ctx, deps, details) };
}

function requirePrompt(details: InteractionDetails, name: string): void {
  if (details.prompt.name !== name) {
    throw expired();
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
        await loginStepPage(ctx, deps, details, toClientInfo(ctx, client), () =>
          renderLogin(ctx, details, displayName(ctx, client)),
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
        throw expired();
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
    renderCodePage(ctx, details, await clientInfoOf(ctx, deps, details), 'recovery');
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
