import { Cluster, Redis, type RedisOptions } from 'ioredis';

interface HostPort {
  host: string;
  port: number;
}

/** Target of REDIS_URL: one server, a Sentinel group watching a primary, or a Cluster. */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | {
      kind: 'sentinel';
      sentinels: HostPort[];
      name: string;
      username?: string;
      password?: string;
      sentinelPassword?: string;
      db: number;
    }
  | { kind: 'cluster'; nodes: HostPort[]; username?: string; password?: string };

/** Either kind of ioredis client; both take the same commands. */
export type RedisClient = Redis | Cluster;

function parseHosts(list: string, defaultPort: number): HostPort[] {
  return list.split(',').map((entry) => {
    const match = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(entry.trim());
    if (!match?.[1]) throw new Error(`'${entry}' is not a host or host:port`);
    const port = match[2] === undefined ? defaultPort : Number(match[2]);
    if (port < 1 || port > 65535) throw new Error(`'${entry}' has a port outside 1 to 65535`);

    return { host: match[1].replace(/^\[|\]$/g, ''), port };
  });
}

/**
 * Parses REDIS_URL. `redis://` and `rediss://` go to ioredis unchanged. `redis+sentinel://` and
 * `redis+cluster://` list several `host:port` separated by commas, which URL parsers reject, so
 * this function splits them. Throws an error whose message names the problem.
 */
export function parseRedisUrl(text: string): RedisTarget {
  const scheme = /^([a-z+]+):\/\//.exec(text)?.[1];
  if (scheme === 'redis' || scheme === 'rediss') {
    const { pathname } = new URL(text);
    if (!/^\/?(\d+)?$/.test(pathname)) {
      throw new Error(`must end with a database number such as /0, not '${pathname}'`);
    }

    return { kind: 'single', url: text };
  }
  if (scheme !== 'redis+sentinel' && scheme !== 'redis+cluster') {
    throw new Error('must start with redis://, rediss://, redis+sentinel:// or redis+cluster://');
  }
  const rest = text.slice(scheme.length + 3);
  const authorityEnd = rest.search(/[/?]/);
  const authority = authorityEnd === -1 ? rest : rest.slice(0, authorityEnd);
  const tail = authorityEnd === -1 ? '' : rest.slice(authorityEnd);
  const at = authority.lastIndexOf('@');
  const userinfo = at === -1 ? undefined : authority.slice(0, at);
  const hosts = parseHosts(at === -1 ? authority : authority.slice(at + 1), 0);
  const [user, password] = (userinfo ?? '').split(':').map((part) => decodeURIComponent(part));
  const credentials = {
    ...(user ? { username: user } : {}),
    ...(password ? { password } : {}),
  };
  const query = new URLSearchParams(tail.includes('?') ? tail.slice(tail.indexOf('?') + 1) : '');
  const path = (tail.split('?')[0] ?? '').replace(/^\//, '');

  if (scheme === 'redis+cluster') {
    if (path !== '') throw new Error('a Cluster has no database number or name after the hosts');

    return {
      kind: 'cluster',
      nodes: hosts.map((host) => ({ ...host, port: host.port || 6379 })),
      ...credentials,
    };
  }
  if (path === '')
    throw new Error('must name the Sentinel primary after the hosts, as in /mymaster');
  const db = Number(query.get('db') ?? '0');
  if (!Number.isInteger(db) || db < 0) throw new Error('db must be a database number');
  const sentinelPassword = query.get('sentinelPassword') ?? undefined;

  return {
    kind: 'sentinel',
    sentinels: hosts.map((host) => ({ ...host, port: host.port || 26379 })),
    name: decodeURIComponent(path),
    db,
    ...credentials,
    ...(sentinelPassword ? { sentinelPassword } : {}),
  };
}

/** Returns the database number that a single server or Sentinel target selects. */
export function selectedDatabase(target: Exclude<RedisTarget, { kind: 'cluster' }>): number {
  return target.kind === 'sentinel'
    ? target.db
    : Number(new URL(target.url).pathname.slice(1) || 0);
}

/**
 * Returns the key prefix to use. A Cluster routes each key by its hash slot, and idp's scripts and
 * transactions touch several keys at once, so there every key must carry the same hash tag.
 */
export function effectiveRedisPrefix(target: RedisTarget, prefix: string): string {
  if (target.kind !== 'cluster' || /\{[^}]+\}/.test(prefix)) return prefix;

  return `{${prefix.replace(/:+$/, '')}}:`;
}

/**
 * Options of the connection that serves requests: a command fails at once while Redis is away,
 * instead of waiting in a queue, so that the request gets a 503 rather than hanging.
 */
const COMMAND_OPTIONS: RedisOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 3000,
  connectTimeout: 5000,
};

/** Creates an ioredis client for the target, not yet connected. */
export function createRedisClient(target: RedisTarget): RedisClient {
  switch (target.kind) {
    case 'single':
      return new Redis(target.url, COMMAND_OPTIONS);
    case 'sentinel':
      return new Redis({
        ...COMMAND_OPTIONS,
        sentinels: target.sentinels,
        name: target.name,
        db: target.db,
        username: target.username,
        password: target.password,
        sentinelPassword: target.sentinelPassword,
      });
    case 'cluster':
      return new Cluster(target.nodes, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRedirections: 8,
        redisOptions: {
          username: target.username,
          password: target.password,
          commandTimeout: COMMAND_OPTIONS.commandTimeout,
          connectTimeout: COMMAND_OPTIONS.connectTimeout,
          maxRetriesPerRequest: 1,
        },
      });
  }
}

/**
 * Creates a second connection for pub/sub. It queues commands while Redis is unreachable and
 * subscribes again after a reconnect. A missed notice only delays a reload, because nodes also
 * reload on a timer.
 */
export function createSubscriber(client: RedisClient): RedisClient {
  const options = {
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    commandTimeout: undefined,
  };

  return client instanceof Cluster
    ? client.duplicate(undefined, {
        enableOfflineQueue: true,
        redisOptions: { ...client.options.redisOptions, ...options },
      })
    : client.duplicate(options);
}

/**
 * Creates the connection on which Redis reports changes to the tokens a node keeps copies of. It
 * reconnects on its own, and its owner sets tracking up again after each reconnect, so nothing is
 * subscribed again by ioredis itself. It speaks RESP2, where the reports arrive as pub/sub
 * messages; ioredis drops RESP3's invalidation pushes.
 */
export function createTrackingConnection(client: Redis): Redis {
  return client.duplicate({
    lazyConnect: true,
    protocol: 2,
    enableOfflineQueue: false,
    autoResubscribe: false,
    maxRetriesPerRequest: 1,
    commandTimeout: undefined,
    connectionName: 'idp-token-cache',
  });
}
