import Provider, {
  type Adapter,
  type ClientMetadata,
  type Configuration,
  errors,
  interactionPolicy,
  type KoaContextWithOIDC,
} from 'oidc-provider';
import type { JWK } from 'jose';
import type { Logger } from '../logger.ts';
import { ACR_MFA, ACR_VALUES, type PolicyInput } from '../mfa/policy.ts';
import type { MessageKey } from '../views/i18n.ts';
import { en } from '../views/messages/en.ts';
import { pageTranslator, renderPage } from '../views/render.ts';
import { CLAIMS_BY_SCOPE } from './account.ts';
import { SECOND_USE_DETAILS } from './adapters/redis.ts';
import { ACCOUNT_CLIENT_ID } from './clients.ts';
import { SIGNING_ALGORITHMS } from './keys.ts';

export interface ProviderOptions {
  issuer: URL;
  /** Returns the adapter of one oidc-provider model, such as `Session` or `Client`. */
  adapter: (model: string) => Adapter;
  findAccount: Configuration['findAccount'];
  signingKeys: JWK[];
  cookieKeys: string[];
  sessionMaxSeconds: number;
  sessionIdleSeconds: number;
  logger: Logger;
  /** Replaces fetch for outgoing requests such as back-channel logout, for tests. */
  fetch?: Configuration['fetch'];
  /** Whether a sign-in of this account, client and request needs a second factor. */
  needsSecondFactor: (input: PolicyInput) => Promise<boolean>;
}

/** Reason of the login prompt when a session lacks the second factor that the request needs. */
export const SECOND_FACTOR_CHECK = 'second_factor_required';

// The details of invalid_grant for a code or refresh token sent again after its use.
const SECOND_USE: ReadonlySet<string> = new Set(Object.values(SECOND_USE_DETAILS));

/**
 * oidc-provider's default prompts, with one more check on the login prompt: a session signed in
 * with the password only must sign in again when the policy now needs a second factor (step-up).
 * With `prompt=none` this check fails the request with `login_required`.
 */
function interactionPolicyWithSecondFactor(
  needsSecondFactor: ProviderOptions['needsSecondFactor'],
) {
  const policy = interactionPolicy.base();
  const check = async (ctx: KoaContextWithOIDC) => {
    const { session, client, params } = ctx.oidc;
    if (!session?.accountId || session.acr === ACR_MFA || !client) {
      return interactionPolicy.Check.NO_NEED_TO_PROMPT;
    }
    const needed = await needsSecondFactor({
      accountId: session.accountId,
      clientRequires2fa: client['idp_require_2fa'] === true,
      params: params as Record<string, unknown>,
    });

    return needed
      ? interactionPolicy.Check.REQUEST_PROMPT
      : interactionPolicy.Check.NO_NEED_TO_PROMPT;
  };
  // A session whose account was disabled or deleted must sign in again. Without this check the
  // session passes the login prompt, and the consent prompt fails on the missing grant.
  const accountGone = (ctx: KoaContextWithOIDC) =>
    Promise.resolve(
      ctx.oidc.session?.accountId && !ctx.oidc.account
        ? interactionPolicy.Check.REQUEST_PROMPT
        : interactionPolicy.Check.NO_NEED_TO_PROMPT,
    );
  policy
    .get('login')
    ?.checks.add(
      new interactionPolicy.Check(
        'account_unavailable',
        'the account of the session can no longer sign in',
        'login_required',
        accountGone,
      ),
    );
  // Checks added after the prompt was built get no default error, so it is named here.
  policy
    .get('login')
    ?.checks.add(
      new interactionPolicy.Check(
        SECOND_FACTOR_CHECK,
        'a second factor is required',
        'login_required',
        check,
      ),
    );

  return policy;
}

/** Returns the built-in client through which /account signs users in with idp's own pages. */
function accountPageClient(issuer: URL): ClientMetadata {
  return {
    client_id: ACCOUNT_CLIENT_ID,
    client_name: 'your account settings',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [new URL('/account/callback', issuer).href],
    idp_require_2fa: false,
    idp_consent: false,
  };
}

/**
 * Returns the seconds a session has left from now: the idle lifetime, which each use renews, but
 * never past the absolute lifetime counted from sign-in.
 */
export function sessionLifetime(
  loginTs: number | undefined,
  idleSeconds: number,
  maxSeconds: number,
  now = Math.floor(Date.now() / 1000),
): number {
  const absoluteLeft = (loginTs ?? now) + maxSeconds - now;

  return Math.max(1, Math.min(idleSeconds, absoluteLeft));
}

/** Lifetimes in seconds of what oidc-provider issues, none longer than a session may last. */
function lifetimes(sessionMax: number, sessionIdle: number): Configuration['ttl'] {
  return {
    AuthorizationCode: Math.min(60, sessionMax),
    AccessToken: Math.min(3600, sessionMax),
    IdToken: Math.min(3600, sessionMax),
    Interaction: Math.min(30 * 60, sessionMax),
    // oidc-provider saves the session, with this lifetime, on each request that uses it.
    Session: (_ctx, session) => sessionLifetime(session.loginTs, sessionIdle, sessionMax),
    Grant: sessionMax,
    // Rotation keeps the first issue time (iiat), so a chain of refresh tokens ends with it too.
    RefreshToken: (_ctx, token) =>
      Math.max(1, (token.iiat ?? token.iat) + sessionMax - Math.floor(Date.now() / 1000)),
  };
}

/** Renders the error page of a failed OIDC request: a sentence for the user, details for the app. */
function renderOidcError(
  ctx: KoaContextWithOIDC,
  out: { error: string; error_description?: string },
): void {
  const { t } = pageTranslator(ctx);
  if (out.error === 'temporarily_unavailable') {
    ctx.body = renderPage(ctx, 'error', {
      title: 'error.unavailableTitle',
      message: t('error.unavailable'),
      requestId: ctx.state.requestId,
    });

    return;
  }
  const serverError = out.error === 'server_error';
  const key = `oidc.${out.error}`;
  const description = out.error_description ?? out.error;
  ctx.body = renderPage(ctx, 'error', {
    title: serverError ? 'error.serverTitle' : 'error.title',
    message: serverError ? t('error.server') : t(key in en ? (key as MessageKey) : 'oidc.generic'),
    details: serverError ? undefined : `${out.error}: ${description}`,
    requestId: ctx.state.requestId,
  });
}

/** Options of oidc-provider's long-lived cookies, such as the session cookie. */
export const SESSION_COOKIE = {
  signed: true,
  secure: true,
  httpOnly: true,
  sameSite: 'lax',
} as const;

/** Builds the oidc-provider instance: code flow with PKCE S256 only, and no development pages. */
export function createProvider(options: ProviderOptions): Provider {
  const configuration: Configuration = {
    adapter: options.adapter as unknown as Configuration['adapter'],
    clients: [accountPageClient(options.issuer)],
    findAccount: options.findAccount,
    acrValues: ACR_VALUES,
    jwks: { keys: options.signingKeys as NonNullable<Configuration['jwks']>['keys'] },
    cookies: {
      keys: options.cookieKeys,
      long: { ...SESSION_COOKIE },
      short: { signed: true, secure: true, httpOnly: true, sameSite: 'lax' },
    },
    claims: {
      ...Object.fromEntries(
        Object.entries(CLAIMS_BY_SCOPE).map(([scope, claims]) => [scope, [...claims]]),
      ),
      // How and how strongly the user signed in, from the sign-in steps, in every ID token.
      openid: [...CLAIMS_BY_SCOPE.openid, 'amr', 'acr'],
    },
    scopes: ['openid', 'profile', 'email', 'offline_access'],
    responseTypes: ['code'],
    pkce: { required: () => true },
    conformIdTokenClaims: false,
    rotateRefreshToken: true,
    issueRefreshToken: (_ctx, client) => Promise.resolve(client.grantTypeAllowed('refresh_token')),
    ttl: lifetimes(options.sessionMaxSeconds, options.sessionIdleSeconds),
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    enabledJWA: {
      idTokenSigningAlgValues: [...SIGNING_ALGORITHMS],
      userinfoSigningAlgValues: [...SIGNING_ALGORITHMS],
      introspectionSigningAlgValues: [...SIGNING_ALGORITHMS],
      authorizationSigningAlgValues: [...SIGNING_ALGORITHMS],
    },
    extraClientMetadata: {
      properties: ['idp_require_2fa', 'idp_consent'],
    },
    // oidc-provider refuses outgoing requests to private and loopback addresses, which protects
    // providers that let anyone register a client. Here only the operator registers clients, and
    // their back-channel logout URIs are often on an internal network or, in development, on
    // localhost; the request timeout set by oidc-provider still applies.
    fetch: (url, init) =>
      (options.fetch ?? globalThis.fetch)(url, { ...init, dispatcher: undefined } as RequestInit),
    interactions: {
      policy: interactionPolicyWithSecondFactor(options.needsSecondFactor),
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      // A client may only inspect or revoke its own tokens.
      revocation: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) => Promise.resolve(token.clientId === client.clientId),
      },
      introspection: {
        enabled: true,
        allowedPolicy: (_ctx, client, token) => Promise.resolve(token.clientId === client.clientId),
      },
      userinfo: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx, form) => {
          ctx.set('cache-control', 'no-store');
          ctx.type = 'html';
          ctx.body = renderPage(ctx, 'logout', {
            title: 'logout.title',
            form,
            clientName: ctx.oidc.client?.clientName,
          });

          return Promise.resolve();
        },
        postLogoutSuccessSource: (ctx) => {
          ctx.set('cache-control', 'no-store');
          ctx.type = 'html';
          ctx.body = renderPage(ctx, 'logged-out', {
            title: 'loggedOut.title',
            clientName: ctx.oidc.client?.clientName,
          });

          return Promise.resolve();
        },
      },
    },
    renderError: (ctx: KoaContextWithOIDC, out, error) => {
      if (out.error === 'server_error') {
        options.logger.error({ err: error, requestId: ctx.state.requestId }, 'OIDC request failed');
      }
      ctx.set('cache-control', 'no-store');
      ctx.type = 'html';
      renderOidcError(ctx, out);

      return Promise.resolve();
    },
  };

  const provider = new Provider(options.issuer.href.replace(/\/$/, ''), configuration);
  provider.on('server_error', (ctx, error) => {
    options.logger.error({ err: error, requestId: ctx.state.requestId }, 'OIDC server error');
  });
  // A code or refresh token that comes back after its use may have been stolen. Its grant is
  // revoked by then, so the user signs in again, and operators should know why.
  provider.on('grant.error', (ctx, error) => {
    const detail = (error as { error_detail?: unknown }).error_detail;
    if (
      error instanceof errors.InvalidGrant &&
      typeof detail === 'string' &&
      SECOND_USE.has(detail)
    ) {
      options.logger.warn(
        {
          requestId: ctx.state.requestId,
          client: ctx.oidc.client?.clientId,
          grantType: ctx.oidc.params?.['grant_type'],
        },
        'a used authorization code or refresh token was sent again, so its grant is revoked',
      );
    }
  });
  // A failed back-channel logout leaves the user signed in to that app, which operators must see.
  provider.on('backchannel.success', (ctx, client, accountId) => {
    options.logger.info(
      { requestId: ctx.state.requestId, client: client.clientId, accountId },
      'back-channel logout delivered',
    );
  });
  provider.on('backchannel.error', (ctx, error, client, accountId) => {
    options.logger.warn(
      { err: error, requestId: ctx.state.requestId, client: client.clientId, accountId },
      'back-channel logout failed',
    );
  });

  return provider;
}
