import { randomUUID } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { Context, Next } from 'koa';
import type { Logger } from '../logger.ts';
import { renderPage } from '../views/render.ts';

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._-]{8,128}$/;

/**
 * Gives each request an id (a well-formed incoming X-Request-Id, or a new UUID), returns it in the
 * response, and logs one line per request: method, path without the query, status and duration.
 * The query string is left out because it can carry codes and tokens.
 */
export function requestLogging(logger: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const incoming = ctx.get('x-request-id');
    const requestId = REQUEST_ID_PATTERN.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('x-request-id', requestId);
    const started = performance.now();
    try {
      await next();
    } finally {
      const durationMs = Math.round((performance.now() - started) * 10) / 10;
      const status = ctx.respond === false ? ctx.res.statusCode : ctx.status;
      logger.info(
        { requestId, method: ctx.method, path: ctx.path, status, durationMs, ip: ctx.ip },
        'request',
      );
    }
  };
}

/**
 * Turns errors thrown by idp's own routes into an HTML error page. Errors marked `expose` show
 * their message; any other error is logged and shown as a generic failure. oidc-provider handles
 * the errors of its own endpoints itself.
 */
export function errorPages(logger: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
    } catch (caught) {
      const error = caught as Error & { status?: number; expose?: boolean };
      const status = error.status && error.status >= 400 && error.status < 600 ? error.status : 500;
      const expose = error.expose === true && status < 500;
      if (!expose) {
        logger.error(
          { err: error, requestId: ctx.state.requestId, path: ctx.path },
          'request failed',
        );
      }
      ctx.status = status;
      ctx.set('cache-control', 'no-store');
      ctx.type = 'html';
      ctx.body = renderPage('error', {
        title: status >= 500 ? 'Something went wrong' : 'Sign-in cannot continue',
        message: expose
          ? error.message
          : 'Something went wrong on our side. Please try again in a moment.',
        requestId: ctx.state.requestId,
      });
    }
  };
}

/**
 * Applies IDP_TRUST_PROXY when it lists proxy addresses: X-Forwarded-* headers from any other peer
 * are removed before koa reads them, so a client cannot claim another address or scheme.
 */
export function trustedProxyFilter(proxies: string[]) {
  const allowed = new BlockList();
  for (const entry of proxies) {
    const [address = '', prefix] = entry.split('/');
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) allowed.addAddress(address, type);
    else allowed.addSubnet(address, Number(prefix), type);
  }

  return async (ctx: Context, next: Next): Promise<void> => {
    const peer = (ctx.req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const type = isIP(peer) === 6 ? 'ipv6' : 'ipv4';
    if (!peer || !allowed.check(peer, type)) {
      for (const name of Object.keys(ctx.req.headers)) {
        if (name.startsWith('x-forwarded-')) Reflect.deleteProperty(ctx.req.headers, name);
      }
    }
    await next();
  };
}
