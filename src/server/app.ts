import { readFileSync } from 'node:fs';
import path from 'node:path';
import Router from '@koa/router';
import helmet from 'helmet';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import { type AccountPageDeps, createAccountRouter } from '../accounts/page.ts';
import { type Config, LOGO_TYPES } from '../config.ts';
import { createInteractionRouter } from '../interactions/routes.ts';
import type { InteractionDeps } from '../interactions/context.ts';
import type { Logger } from '../logger.ts';
import { withReadAhead } from '../oidc/adapters/read-ahead.ts';
import { auditLogout } from '../oidc/sessions.ts';
import { type Branding, idleScript, stylesheet } from '../views/render.ts';
import { type Metrics, renderMetrics, requestTiming } from './metrics.ts';
import { errorPages, forwardedHeaders, requestLogging } from './middleware.ts';

/**
 * Sets helmet's security headers on every response. None of the values depends on the request, so
 * helmet runs once at start-up against a stand-in response that records them, and each request
 * copies them. helmet itself would rebuild the policy strings on every request.
 */
function securityHeaders() {
  const headers = new Map<string, string>();
  const recorder = {
    setHeader: (name: string, value: string) => headers.set(name.toLowerCase(), value),
    removeHeader: (name: string) => headers.delete(name.toLowerCase()),
  };
  const helmetMiddleware = helmet({
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        frameAncestors: ["'none'"],
        // Left out: Chromium applies form-action to the redirect after a form post, which would
        // stop the final redirect to the app's redirect_uri.
        formAction: null,
        upgradeInsecureRequests: [],
      },
    },
    strictTransportSecurity: { maxAge: 31536000, includeSubDomains: true },
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginEmbedderPolicy: false,
  });
  let failure: unknown;
  helmetMiddleware(
    {} as Parameters<typeof helmetMiddleware>[0],
    recorder as unknown as Parameters<typeof helmetMiddleware>[1],
    (error?: unknown) => {
      failure = error;
    },
  );
  if (failure !== undefined || headers.size === 0) {
    throw new Error('helmet did not produce the security headers', { cause: failure });
  }
  const entries = [...headers];

  return async (ctx: Context, next: Next): Promise<void> => {
    for (const [name, value] of entries) ctx.res.setHeader(name, value);
    await next();
  };
}

/** Result of the readiness check per dependency; `redis` is absent without REDIS_URL. */
export interface Readiness {
  database: boolean;
  redis?: boolean;
}

export interface AppDeps extends InteractionDeps, AccountPageDeps {
  config: Config;
  provider: Provider;
  logger: Logger;
  metrics: Metrics;
  /** False when /metrics has its own port (IDP_METRICS_PORT). */
  serveMetrics: boolean;
  /** True once shutdown has begun: not ready, and connections close after their response. */
  isDraining: () => boolean;
  /** Checks whether the connections that readiness depends on respond. */
  checkReady: () => Promise<Readiness>;
}

const DEPENDENCY_NAMES = { database: 'Postgres', redis: 'Redis' } as const;

/** Handles /readyz: 200 when Postgres and Redis respond, else 503 naming those that do not. */
async function readiness(ctx: Context, deps: AppDeps): Promise<void> {
  ctx.set('cache-control', 'no-store');
  if (deps.isDraining()) {
    ctx.status = 503;
    ctx.body = { status: 'stopping' };

    return;
  }
  const checks = await deps.checkReady();
  const failing = (Object.keys(checks) as (keyof Readiness)[]).filter((name) => !checks[name]);
  if (failing.length === 0) {
    ctx.body = { status: 'ready', checks };

    return;
  }
  ctx.status = 503;
  ctx.body = {
    status: 'unavailable',
    checks,
    reason: `${failing.map((name) => DEPENDENCY_NAMES[name]).join(' and ')} not answering`,
  };
}

/** Reads the operator's logo once, so a missing file stops start-up rather than a page. */
function loadBranding(config: Config): {
  branding: Branding;
  logo?: { type: string; data: Buffer };
} {
  const { productName, logoFile } = config.branding;
  if (!logoFile) return { branding: { productName } };
  const type = LOGO_TYPES[path.extname(logoFile).toLowerCase()] ?? 'application/octet-stream';

  return {
    branding: { productName, logoPath: '/static/logo' },
    logo: { type, data: readFileSync(logoFile) },
  };
}

/**
 * Returns a middleware that runs `routes` only for the paths `owns` accepts, and hands every other
 * request straight to the next middleware.
 */
function onlyFor<C extends Context>(
  owns: (path: string) => boolean,
  routes: (ctx: C, next: Next) => unknown,
) {
  return (ctx: C, next: Next): unknown => (owns(ctx.path) ? routes(ctx, next) : next());
}

// oidc-provider's introspection and userinfo routes: requests that only read tokens, so the
// node's copies of tokens may serve them.
const TOKEN_READ_PATHS: ReadonlySet<string> = new Set(['/token/introspection', '/me']);

/** Adds idp's middleware and routes to the oidc-provider koa application. */
export function configureApp(deps: AppDeps): Provider {
  const { provider, config, logger } = deps;
  // Koa reads the scheme and host from X-Forwarded-* only with `proxy` on; forwardedHeaders
  // replaces those headers with the issuer's on every request.
  provider.proxy = true;
  provider.use((ctx, next) => withReadAhead(next, { cacheable: TOKEN_READ_PATHS.has(ctx.path) }));
  provider.use(forwardedHeaders(config.issuer, config.trustProxy));
  provider.use(requestLogging(logger));
  provider.use(requestTiming(deps.metrics));
  provider.use(async (ctx, next) => {
    // While shutting down, a keep-alive connection closes after its response.
    if (deps.isDraining()) ctx.set('connection', 'close');
    await next();
    if (deps.isDraining() && !ctx.headerSent) ctx.set('connection', 'close');
    if (ctx.status === 503) ctx.set('retry-after', '30');
  });
  provider.use(securityHeaders());
  const { branding, logo } = loadBranding(config);
  provider.use(async (ctx, next) => {
    ctx.state.branding = branding;
    await next();
  });
  provider.use(errorPages(logger));
  provider.use(auditLogout(deps.audit, logger));

  const ops = new Router();
  ops.get('/healthz', (ctx) => {
    ctx.set('cache-control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  ops.get('/readyz', (ctx) => readiness(ctx, deps));
  if (deps.serveMetrics) ops.get('/metrics', (ctx) => renderMetrics(ctx, deps.metrics));
  ops.get('/static/idp.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = stylesheet;
  });
  ops.get('/static/idle.js', (ctx) => {
    ctx.type = 'text/javascript';
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = idleScript;
  });
  if (logo) {
    ops.get('/static/logo', (ctx) => {
      ctx.type = logo.type;
      ctx.set('cache-control', 'public, max-age=3600');
      ctx.body = logo.data;
    });
  }
  // Requests for oidc-provider's endpoints skip idp's routers, whose matching would cost every
  // token and introspection request a few microseconds for nothing.
  provider.use(onlyFor((path) => ops.stack.some((layer) => layer.match(path)), ops.routes()));
  provider.use(
    onlyFor((path) => path.startsWith('/interaction/'), createInteractionRouter(deps).routes()),
  );
  provider.use(
    onlyFor(
      (path) => path === '/account' || path.startsWith('/account/'),
      createAccountRouter(deps, config.issuer).routes(),
    ),
  );

  return provider;
}
