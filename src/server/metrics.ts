import { createServer, type Server } from 'node:http';
import type { Context, Next } from 'koa';
import type Provider from 'oidc-provider';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { type Database, poolCounts } from '../db/database.ts';
import type { RedisClient } from '../db/redis.ts';
import type { TokenCache } from '../oidc/adapters/token-cache.ts';
import type { DependencyMonitor } from './outages.ts';

/** Outcomes of the password step, as counted. */
export type SignInOutcome = 'success' | 'failed' | 'locked';

/** Outcomes of the second-factor step, as counted. */
export type SecondFactorOutcome = 'success' | 'wrong_code' | 'replayed_code' | 'recovery_code';

/**
 * idp's Prometheus metrics, one registry per server. Counters are incremented by the steps that
 * know the outcome; gauges of connection state are read when /metrics is scraped.
 */
export interface Metrics {
  registry: Registry;
  signIns: Counter<'outcome'>;
  secondFactor: Counter<'outcome'>;
  accountLocks: Counter;
  tokensIssued: Counter<'grant_type'>;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
}

export function createMetrics(sources: {
  database: Database;
  redis?: RedisClient;
  monitor: DependencyMonitor;
  tokenCache?: TokenCache;
}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  const metrics: Metrics = {
    registry,
    signIns: new Counter({
      name: 'idp_sign_ins_total',
      help: 'Password steps by outcome.',
      labelNames: ['outcome'],
      registers,
    }),
    secondFactor: new Counter({
      name: 'idp_second_factor_total',
      help: 'Second-factor steps by outcome.',
      labelNames: ['outcome'],
      registers,
    }),
    accountLocks: new Counter({
      name: 'idp_account_locks_total',
      help: 'Accounts locked after too many failed attempts.',
      registers,
    }),
    tokensIssued: new Counter({
      name: 'idp_tokens_issued_total',
      help: 'Successful token endpoint responses by grant type.',
      labelNames: ['grant_type'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'idp_http_request_duration_seconds',
      help: 'HTTP request duration by route pattern, method and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
  };

  new Gauge({
    name: 'idp_database_pool_connections',
    help: 'Postgres pool connections by state (absent with the embedded database).',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = poolCounts(sources.database);
      if (!counts) return;
      for (const [state, value] of Object.entries(counts)) this.set({ state }, value);
    },
  });
  new Gauge({
    name: 'idp_redis_connected',
    help: '1 while the Redis connection is ready, 0 otherwise (absent without REDIS_URL).',
    registers,
    collect() {
      if (sources.redis) this.set(sources.redis.status === 'ready' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'idp_dependency_up',
    help: '0 while requests to the dependency fail because it cannot be reached, 1 otherwise.',
    labelNames: ['dependency'],
    registers,
    collect() {
      this.set({ dependency: 'database' }, sources.monitor.isUp('database') ? 1 : 0);
      if (sources.redis) this.set({ dependency: 'redis' }, sources.monitor.isUp('redis') ? 1 : 0);
    },
  });

  new Counter({
    name: 'idp_token_cache_lookups_total',
    help: "Introspection and userinfo lookups of tokens and grants in the node's copies, by result.",
    labelNames: ['result'],
    registers,
    collect() {
      if (!sources.tokenCache) return;
      const { hits, misses } = sources.tokenCache.stats;
      this.reset();
      this.inc({ result: 'hit' }, hits);
      this.inc({ result: 'miss' }, misses);
    },
  });
  new Gauge({
    name: 'idp_token_cache_tracking',
    help: '1 while Redis reports token changes to this node, so that its copies are used.',
    registers,
    collect() {
      if (sources.tokenCache) this.set(sources.tokenCache.tracking ? 1 : 0);
    },
  });

  return metrics;
}

/**
 * Times each request by route pattern: oidc-provider's route or the router's pattern, never the
 * raw path, which contains ids and would make the label set unbounded.
 */
export function requestTiming(metrics: Metrics) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const end = metrics.httpDuration.startTimer();
    try {
      await next();
    } finally {
      const matched = (ctx as Context & { _matchedRoute?: unknown })._matchedRoute;
      const route = typeof matched === 'string' ? matched : 'unmatched';
      const status = ctx.respond === false ? ctx.res.statusCode : ctx.status;
      end({ method: ctx.method, route, status: String(status) });
    }
  };
}

/** Counts what oidc-provider reports through its events. */
export function countProviderEvents(provider: Provider, metrics: Metrics): void {
  provider.on('grant.success', (ctx) => {
    const grantType = ctx.oidc.params?.['grant_type'];
    metrics.tokensIssued.inc({ grant_type: typeof grantType === 'string' ? grantType : 'unknown' });
  });
}

/** Responds to GET /metrics with the registry's text format. */
export async function renderMetrics(ctx: Context, metrics: Metrics): Promise<void> {
  ctx.set('cache-control', 'no-store');
  ctx.type = metrics.registry.contentType;
  ctx.body = await metrics.registry.metrics();
}

/** Creates a plain HTTP server that serves only /metrics, for IDP_METRICS_PORT. */
export function createMetricsServer(metrics: Metrics): Server {
  return createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');

      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n'),
    );
  });
}
