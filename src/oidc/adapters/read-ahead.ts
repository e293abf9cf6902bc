import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Grants that the Redis adapter read together with a token during the current request, by grant id
 * (null when the Grant was missing). oidc-provider looks a token's Grant up right after the token,
 * so the next Grant lookup of the request takes its entry instead of asking Redis again, and the
 * token and its Grant come from one atomic step. Outside a request nothing is read ahead.
 */
export const readAhead = new AsyncLocalStorage<Map<string, string | null>>();

/** Runs `next` with a read-ahead scope of its own. idp installs it once per HTTP request. */
export function withReadAhead<T>(next: () => Promise<T>): Promise<T> {
  return readAhead.run(new Map(), next);
}
