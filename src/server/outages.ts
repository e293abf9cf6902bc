import { errors } from 'oidc-provider';
import type { Database, Queryable, Session } from '../db/database.ts';
import { AppError } from '../errors.ts';
import type { Logger } from '../logger.ts';

export type Dependency = 'database' | 'redis';

const LABEL: Record<Dependency, string> = { database: 'Postgres', redis: 'Redis' };

/** Message of the 503 page shown while a dependency is unreachable. */
export const UNAVAILABLE_MESSAGE =
  'Sign-in is unavailable for a moment because the service cannot reach its storage. Please try again in a few minutes.';

/**
 * Tracks whether Postgres and Redis are reachable, from the outcome of real operations and
 * connection events. It logs each change of state once: one line when a dependency becomes
 * unreachable and one when it is back, however many requests fail in between.
 */
export class DependencyMonitor {
  readonly #logger: Logger;
  readonly #down = new Map<Dependency, number>();
  /** Time each dependency last responded, from performance.now(). */
  readonly #lastUp = new Map<Dependency, number>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  isUp(dependency: Dependency): boolean {
    return !this.#down.has(dependency);
  }

  /**
   * Records that a dependency failed. `startedAt` (from performance.now()) is when the failed
   * operation began. A failure of an operation that began before the dependency last responded is
   * stale, such as a command sent before a reconnection that fails after it, so it is ignored.
   */
  markDown(dependency: Dependency, error: unknown, startedAt?: number): void {
    if (startedAt !== undefined && (this.#lastUp.get(dependency) ?? -Infinity) >= startedAt) return;
    if (this.#down.has(dependency)) return;
    this.#down.set(dependency, Date.now());
    this.#logger.error(
      { dependency, reason: describeError(error) },
      `${LABEL[dependency]} is unavailable: requests that need it get 503 until it is reachable again`,
    );
  }

  markUp(dependency: Dependency): void {
    this.#lastUp.set(dependency, performance.now());
    const since = this.#down.get(dependency);
    if (since === undefined) return;
    this.#down.delete(dependency);
    this.#logger.info(
      { dependency, downSeconds: Math.round((Date.now() - since) / 100) / 10 },
      `${LABEL[dependency]} is available again`,
    );
  }
}

/** Describes an error in one line, including the parts of an AggregateError. */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return [...new Set(error.errors.map(describeError))].join('; ');
  }
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;

    return error.message || code || error.name;
  }

  return String(error);
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ECONNABORTED',
]);

function hasNetworkCode(error: unknown): boolean {
  if (error instanceof AggregateError) return error.errors.some(hasNetworkCode);
  const code = (error as { code?: unknown } | undefined)?.code;

  return typeof code === 'string' && NETWORK_CODES.has(code);
}

/**
 * Returns true when a Postgres error means the server is unreachable or not accepting work, not
 * that the query is wrong. That is SQLSTATE class 08 (connection), 57P01-57P03 (shutting down or
 * starting), 53300 (too many connections), or a socket error from node-postgres.
 */
export function isDatabaseOutage(error: unknown): boolean {
  if (hasNetworkCode(error)) return true;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && (/^08/.test(code) || /^57P0[123]$/.test(code))) return true;
  if (code === '53300') return true;
  const message = error instanceof Error ? error.message : '';

  return /Connection terminated|connection error|timeout exceeded when trying to connect|Connection closed/i.test(
    message,
  );
}

/**
 * Returns true when a Redis error means Redis is unreachable: a closed or unwritable connection,
 * a timeout, or an error reply for a server that cannot serve now (loading, failover, cluster down).
 */
export function isRedisOutage(error: unknown): boolean {
  if (hasNetworkCode(error)) return true;
  const message = error instanceof Error ? error.message : '';

  return /^(LOADING|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN)\b|Connection is closed|Command timed out|Stream isn't writeable|Reached the max retries|None of startup nodes is available|Failed to refresh slots cache|All sentinels are unreachable/.test(
    message,
  );
}

/** Creates the error idp's own pages throw while a dependency is unreachable: 503, plain words. */
export function unavailableError(cause: unknown): AppError {
  return new AppError('unavailable', UNAVAILABLE_MESSAGE, { cause });
}

/**
 * Creates the error handed to oidc-provider while a dependency is unreachable. oidc-provider
 * responds with the OAuth error `temporarily_unavailable` and status 503, as JSON to apps and as a
 * page to browsers, or redirects it to the app from the authorization endpoint.
 */
export function temporarilyUnavailable(): InstanceType<typeof errors.TemporarilyUnavailable> {
  const error = new errors.TemporarilyUnavailable(
    'the service cannot reach its storage; try again in a few minutes',
  );
  error.status = 503;
  error.statusCode = 503;

  return error;
}

/** Returns true for the errors of unavailableError and temporarilyUnavailable. */
export function isUnavailableError(error: unknown): boolean {
  return (
    (error instanceof AppError && error.code === 'unavailable') ||
    (error instanceof errors.TemporarilyUnavailable && error.status === 503)
  );
}

/**
 * Wraps the database so that an outage is reported to the monitor and becomes an `unavailable`
 * AppError, and a success after an outage is reported too. Other errors pass unchanged.
 */
export function watchDatabase(database: Database, monitor: DependencyMonitor): Database {
  const observe = async <T>(work: () => Promise<T>): Promise<T> => {
    const startedAt = performance.now();
    try {
      const result = await work();
      monitor.markUp('database');

      return result;
    } catch (error) {
      if (!isDatabaseOutage(error)) throw error;
      monitor.markDown('database', error, startedAt);
      throw unavailableError(error);
    }
  };

  return {
    kind: database.kind,
    query: <Row extends object>(sql: string, params?: unknown[]) =>
      observe(() => database.query<Row>(sql, params)),
    withSession: <T>(work: (session: Session) => Promise<T>) =>
      observe(() => database.withSession(work)),
    transaction: <T>(work: (tx: Queryable) => Promise<T>) =>
      observe(() => database.transaction(work)),
    close: () => database.close(),
  };
}
