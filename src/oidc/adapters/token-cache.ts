import type { Redis } from 'ioredis';
import type { Logger } from '../../logger.ts';

/** Counts of cache lookups, for the metrics. */
export interface TokenCacheStats {
  hits: number;
  misses: number;
}

/**
 * A value cached for a key: a parsed record, a plain string such as the id an index contains, or
 * null when the key did not exist.
 */
export type CachedValue = object | string | null;

/** A key to cache, its value, and when the value carries one, its expiry in epoch seconds. */
export type CacheEntry = [key: string, value: CachedValue, exp?: unknown];

interface StoredEntry {
  value: CachedValue;
  expires: number;
}

/** One read from Redis in flight: the keys invalidated while it ran must not be kept. */
interface Read {
  epoch: number;
  invalidated: Set<string>;
}

const INVALIDATE_CHANNEL = '__redis__:invalidate';

/** Freezes `value` and every object it contains, so that no reader can change what others share. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }

  return value;
}

/**
 * A per-node copy of records that Redis keeps up to date. A dedicated connection requests Redis to
 * report every change to keys under the given prefixes (CLIENT TRACKING in broadcast mode, sent
 * to the connection itself). A report removes the key's copy, so a token revoked through any node
 * stops being served here within the time Redis takes to tell this node.
 *
 * Nothing is kept while that connection is down or not yet tracking: when it drops, every copy
 * goes, because reports sent in the meantime are lost. A read that overlaps a report for its key,
 * or a drop, returns its result without keeping it, since the result may predate the change.
 *
 * A connection can also stall without closing, as when the network between the node and Redis
 * fails. The cache pings Redis every second on it, and serves no copy while the last ping sent
 * more than three seconds ago has no reply. Redis replies to a ping after every report queued
 * before it, so once the reply arrives the copies are current again.
 */
export class TokenCache {
  readonly #connection: Redis;
  readonly #prefixes: string[];
  readonly #logger: Logger;
  readonly #size: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, StoredEntry>();
  readonly #reads = new Set<Read>();
  // Raised on every drop and every flush; a read begun in an earlier epoch is not kept.
  #epoch = 0;
  // Raised when the connection drops, so that tracking set up on an older connection is ignored.
  #connectionNumber = 0;
  #tracking = false;
  #closing = false;
  #rejected = false;
  #setUp: Promise<void> = Promise.resolve();
  readonly #heartbeat: NodeJS.Timeout;
  readonly #staleAfterMs: number;
  // The send time of the last ping that got a reply.
  #heardAt = -Infinity;
  #hits = 0;
  #misses = 0;

  constructor(options: {
    /** A connection of its own, not yet connected; the cache subscribes on it. */
    connection: Redis;
    prefixes: string[];
    logger: Logger;
    size?: number;
    maxAgeSeconds?: number;
    /** How often to ping Redis on the connection. */
    heartbeatMs?: number;
    /** How long after a ping without a reply the copies stop being served. */
    staleAfterMs?: number;
    now?: () => number;
  }) {
    this.#connection = options.connection;
    this.#prefixes = options.prefixes;
    this.#logger = options.logger;
    this.#size = options.size ?? 10_000;
    this.#maxAgeMs = (options.maxAgeSeconds ?? 60) * 1000;
    this.#now = options.now ?? Date.now;
    this.#staleAfterMs = options.staleAfterMs ?? 3000;
    this.#heartbeat = setInterval(() => this.#ping(), options.heartbeatMs ?? 1000);
    this.#heartbeat.unref();
    this.#connection.on('messageBuffer', (channel: Buffer, keys: unknown) => {
      if (channel.toString() === INVALIDATE_CHANNEL) this.#invalidate(keys);
    });
    this.#connection.on('ready', () => {
      this.#setUp = this.#track();
    });
    for (const event of ['close', 'end', 'reconnecting']) {
      this.#connection.on(event, () => this.#drop());
    }
    // The dependency monitor learns of outages from the main connection; errors here only stop
    // the copies, which #drop does on close.
    this.#connection.on('error', () => {});
  }

  /**
   * Connects and starts tracking. Failing to track leaves the cache off, not idp; the connection
   * keeps trying to reconnect, and tracking starts once it succeeds.
   */
  async start(): Promise<void> {
    try {
      await this.#connection.connect();
    } catch (error) {
      this.#logger.warn({ err: error }, 'the token cache could not connect to Redis; it stays off');
    }
    await this.#setUp;
  }

  /** Whether Redis reports changes to this node and replied to a recent ping, so copies may be used. */
  get tracking(): boolean {
    return this.#tracking && this.#now() - this.#heardAt < this.#staleAfterMs;
  }

  get stats(): TokenCacheStats {
    return { hits: this.#hits, misses: this.#misses };
  }

  /**
   * Returns the cached value of `key`: null for a key known to be missing, undefined if none is
   * cached. Records are frozen, because every request shares them.
   */
  peek(key: string): CachedValue | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined || !this.tracking) {
      this.#misses += 1;
      return undefined;
    }
    if (entry.expires <= this.#now()) {
      this.#entries.delete(key);
      this.#misses += 1;
      return undefined;
    }
    this.#hits += 1;

    return entry.value;
  }

  /**
   * Runs `load`, a read from Redis, and caches each key and value that `keep` picks from its
   * result, unless Redis reported a change to that key while the read ran. Returns what `load`
   * returned. A cached record is frozen, so the caller receives it frozen too.
   */
  async read<T>(load: () => Promise<T>, keep: (result: T) => CacheEntry[]): Promise<T> {
    if (!this.tracking) return load();
    const read: Read = { epoch: this.#epoch, invalidated: new Set() };
    this.#reads.add(read);
    try {
      const result = await load();
      if (read.epoch === this.#epoch && this.tracking) {
        for (const [key, value, exp] of keep(result)) {
          if (!read.invalidated.has(key)) this.#store(key, value, exp);
        }
      }

      return result;
    } finally {
      this.#reads.delete(read);
    }
  }

  /** Drops the copies of `keys`, and keeps no result of a read of them now running. */
  forget(keys: Iterable<string>): void {
    for (const key of keys) {
      this.#entries.delete(key);
      for (const read of this.#reads) read.invalidated.add(key);
    }
  }

  /** Drops every copy, and keeps no result of a read now running. */
  forgetAll(): void {
    this.#flush();
  }

  /** Stops tracking and drops every copy. */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#heartbeat);
    this.#drop();
    this.#connection.disconnect();
  }

  #store(key: string, value: CachedValue, exp: unknown): void {
    const now = this.#now();
    let expires = now + this.#maxAgeMs;
    // A record stops being kept when it expires in Redis.
    if (typeof exp === 'number') expires = Math.min(expires, exp * 1000);
    if (expires <= now) return;
    this.#entries.delete(key);
    this.#entries.set(key, { value: deepFreeze(value), expires });
    if (this.#entries.size > this.#size) {
      this.#entries.delete(this.#entries.keys().next().value as string);
    }
  }

  #invalidate(keys: unknown): void {
    // A flush of the whole database arrives as a report without keys.
    if (!Array.isArray(keys)) {
      this.#flush();
      return;
    }
    this.forget((keys as Buffer[]).map(String));
  }

  #flush(): void {
    this.#epoch += 1;
    this.#entries.clear();
  }

  #drop(): void {
    this.#connectionNumber += 1;
    this.#tracking = false;
    this.#heardAt = -Infinity;
    this.#flush();
  }

  #ping(): void {
    if (!this.#tracking || this.#connection.status !== 'ready') return;
    const sentAt = this.#now();
    const connection = this.#connectionNumber;
    this.#connection.ping().then(
      () => {
        if (connection === this.#connectionNumber) this.#heardAt = Math.max(this.#heardAt, sentAt);
      },
      () => {},
    );
  }

  async #track(): Promise<void> {
    const connection = this.#connectionNumber;
    const sentAt = this.#now();
    try {
      const id = await this.#connection.client('ID');
      const prefixes = this.#prefixes.flatMap((prefix) => ['PREFIX', prefix]);
      await this.#connection.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', id, 'BCAST', ...prefixes);
      await this.#connection.subscribe(INVALIDATE_CHANNEL);
    } catch (error) {
      // A lost connection is retried by ioredis, which sets tracking up again on reconnecting.
      if (this.#closing || (error as Error).name !== 'ReplyError') return;
      // A Redis that rejects tracking (an old version, or an ACL without CLIENT) keeps the cache
      // off. idp then reads every token from Redis, as it would without the cache.
      if (!this.#rejected) {
        this.#rejected = true;
        this.#logger.warn(
          { err: error },
          'Redis rejected CLIENT TRACKING: tokens will be read from Redis on every request',
        );
      }
      return;
    }
    // The connection may have dropped while tracking was being set up.
    if (connection === this.#connectionNumber && !this.#closing) {
      this.#heardAt = sentAt;
      this.#tracking = true;
      if (this.#rejected) {
        this.#rejected = false;
        this.#logger.info('Redis tracks tokens again: the token cache is on');
      }
    }
  }
}
