import { AsyncLocalStorage } from 'node:async_hooks';
import type { AdapterPayload } from 'oidc-provider';

/** The state the Redis adapter keeps for the HTTP request it serves. */
export interface RequestReads {
  /**
   * Grants read together with a token during this request, by grant id (null when the Grant was
   * missing). oidc-provider looks a token's Grant up right after the token, so the next Grant
   * lookup of the request takes its entry instead of asking Redis again, and the token and its
   * Grant come from one atomic step.
   */
  grants: Map<string, AdapterPayload | null>;
  /**
   * Whether the request only reads tokens (introspection, userinfo), so that the node's copies
   * kept up to date by Redis may serve it. The token endpoint always reads Redis itself, because
   * codes and refresh tokens must be used once.
   */
  cacheable: boolean;
}

/** The reads of the current request. Outside a request nothing is read ahead or kept. */
export const readAhead = new AsyncLocalStorage<RequestReads>();

/** Runs `next` with a request scope of its own. idp installs it once per HTTP request. */
export function withReadAhead<T>(
  next: () => Promise<T>,
  options: { cacheable?: boolean } = {},
): Promise<T> {
  return readAhead.run({ grants: new Map(), cacheable: options.cacheable ?? false }, next);
}
