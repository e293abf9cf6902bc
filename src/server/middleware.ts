import { randomUUID } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import type { Context, Next } from 'koa';
import type { Logger } from '../logger.ts';
import type { MessageKey } from '../views/i18n.ts';
import { pageTranslator, renderPage } from '../views/render.ts';
import { isUnavailableError } from './outages.ts';

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._-]{8,128}$/;

/**
 * Gives each request an id, returns it in the response, and logs one line per request: method,
 * path without the query, status and duration. The query is left out because it can carry codes
 * and tokens. The id is a well-formed X-Request-Id from a trusted proxy, or else a new UUID,
 * because a client's own id could be forged to confuse the audit log.
 */
export function requestLogging(logger: Logger) {
  // These lines carry only the fields below, none of them secret, so they skip the redaction
  // paths, which cost more than the rest of the line on every request.
  const accessLog = logger.child({}, { redact: [] });

  return async (ctx: Context, next: Next): Promise<void> => {
    const incoming = ctx.state.fromTrustedProxy === true ? ctx.get('x-request-id') : '';
    const requestId = REQUEST_ID_PATTERN.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.set('x-request-id', requestId);
    const started = performance.now();
    try {
      await next();
    } finally {
      const durationMs = Math.round((performance.now() - started) * 10) / 10;
      const status = ctx.respond === false ? ctx.res.statusCode : ctx.status;
      accessLog.info(
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
      const { t } = pageTranslator(ctx);
      if (isUnavailableError(caught)) {
        // The outage itself is logged once by the dependency monitor, not once per request.
        ctx.status = 503;
        ctx.set('cache-control', 'no-store');
        ctx.type = 'html';
        ctx.body = renderPage(ctx, 'error', {
          title: 'error.unavailableTitle',
          message: t('error.unavailable'),
          requestId: ctx.state.requestId,
        });

        return;
      }
      const error = caught as Error & {
        status?: number;
        expose?: boolean;
        messageKey?: MessageKey;
      };
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
      ctx.body = renderPage(ctx, 'error', {
        title: status >= 500 ? 'error.serverTitle' : 'error.title',
        message: !expose
          ? t('error.server')
          : error.messageKey
            ? t(error.messageKey)
            : error.message,
        requestId: ctx.state.requestId,
      });
    }
  };
}

function toBlockList(proxies: string[]): BlockList {
  const list = new BlockList();
  for (const entry of proxies) {
    const [address = '', prefix] = entry.split('/');
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }

  return list;
}

function normaliseAddress(address: string | undefined): string {
  return (address ?? '').trim().replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
}

/**
 * Returns the client address from the peer and X-Forwarded-For. The header is read from the right,
 * and each hop counts only while the address before it is a trusted proxy. A malformed entry ends
 * the walk, so junk in the header never becomes the client address.
 */
export function clientAddress(
  peer: string,
  forwardedFor: string | undefined,
  isTrusted: (address: string, depth: number) => boolean,
): string {
  let client = peer;
  const hops = (forwardedFor ?? '').split(',').map(normaliseAddress).reverse();
  for (const [depth, hop] of hops.entries()) {
    if (!isTrusted(client, depth) || isIP(hop) === 0) break;
    client = hop;
  }

  return client;
}

/**
 * Applies IDP_TRUST_PROXY. X-Forwarded-For is read only from trusted proxies, which for `true` is
 * the one peer directly in front. The scheme and host that oidc-provider builds its URLs from are
 * always the issuer's, so no client or proxy can make idp advertise another origin.
 */
export function forwardedHeaders(issuer: URL, trustProxy: false | true | string[]) {
  const trusted = Array.isArray(trustProxy) ? toBlockList(trustProxy) : undefined;
  // Depth 0 is the peer itself; `true` trusts only that one proxy.
  const isTrusted = (address: string, depth: number): boolean => {
    if (trustProxy === false) return false;
    if (trustProxy === true) return depth === 0;
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';

    return isIP(address) !== 0 && (trusted as BlockList).check(address, type);
  };
  const protocol = issuer.protocol.replace(':', '');

  return async (ctx: Context, next: Next): Promise<void> => {
    const peer = normaliseAddress(ctx.req.socket.remoteAddress);
    ctx.state.fromTrustedProxy = isTrusted(peer, 0);
    const forwardedFor = ctx.get('x-forwarded-for') || undefined;
    ctx.request.ip = clientAddress(peer, forwardedFor, isTrusted);
    for (const name of Object.keys(ctx.req.headers)) {
      if (name.startsWith('x-forwarded-')) Reflect.deleteProperty(ctx.req.headers, name);
    }
    ctx.req.headers['x-forwarded-proto'] = protocol;
    ctx.req.headers['x-forwarded-host'] = issuer.host;
    await next();
  };
}
