import Router from '@koa/router';
import helmet from 'helmet';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import type { Config } from '../config.ts';
import { createInteractionRouter } from '../interactions/routes.ts';
import type { InteractionDeps } from '../interactions/context.ts';
import type { Logger } from '../logger.ts';
import { stylesheet } from '../views/render.ts';
import { errorPages, forwardedHeaders, requestLogging } from './middleware.ts';

/** Runs helmet's header middleware inside koa. */
function securityHeaders() {
  const headers = helmet({
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

  return (ctx: Context, next: Next): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      headers(ctx.req, ctx.res, (error?: unknown) => (error ? reject(error) : resolve()));
    }).then(next);
}

export interface AppDeps extends InteractionDeps {
  config: Config;
  provider: Provider;
  logger: Logger;
  /** Checks the connections that readiness depends on; rejects with the name of a failing one. */
  checkReady: () => Promise<void>;
}

/** Adds idp's middleware and routes to the oidc-provider koa application. */
export function configureApp(deps: AppDeps): Provider {
  const { provider, config, logger } = deps;
  // Koa reads the scheme and host from X-Forwarded-* only with `proxy` on; forwardedHeaders
  // replaces those headers with the issuer's on every request.
  provider.proxy = true;
  provider.use(forwardedHeaders(config.issuer, config.trustProxy));
  provider.use(requestLogging(logger));
  provider.use(securityHeaders());
  provider.use(errorPages(logger));

  const ops = new Router();
  ops.get('/healthz', (ctx) => {
    ctx.set('cache-control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  ops.get('/readyz', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    try {
      await deps.checkReady();
      ctx.body = { status: 'ready' };
    } catch (error) {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', reason: (error as Error).message };
    }
  });
  ops.get('/static/idp.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('cache-control', 'public, max-age=3600');
    ctx.body = stylesheet;
  });
  provider.use(ops.routes());
  provider.use(createInteractionRouter(deps).routes());

  return provider;
}
