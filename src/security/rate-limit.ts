import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { canonicalUsername } from '../accounts/username.ts';
import type { RedisClient } from '../db/redis.ts';
import { type DependencyMonitor, isRedisOutage, unavailableError } from '../server/outages.ts';

/**
 * Policy for failed sign-in steps (passwords and codes): when an account slows down and locks, and
 * how many failures one address may make. The README explains the defaults.
 */
export interface LockoutPolicy {
  /** Failures of one account within the window after which each attempt waits. */
  delayAfter: number;
  /** The first wait; it doubles with each further failure up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Failures of one account within the window that lock it. */
  lockAfter: number;
  windowMs: number;
  /** How long a lock lasts. It is never extended: attempts during it do not make it longer. */
  lockMs: number;
  /** Failures from one address within the window after which it is rejected for ipBlockMs. */
  ipLimit: number;
  ipBlockMs: number;
  /**
   * Interval of attempts on a locked account from addresses with no failures in the window. Such
   * an address gets one attempt per account per interval, and later ones wait for their turn.
   */
  bypassIntervalMs: number;
}

const MINUTE = 60_000;

export const DEFAULT_LOCKOUT_POLICY: LockoutPolicy = {
  delayAfter: 5,
  baseDelayMs: 1000,
  maxDelayMs: 16_000,
  lockAfter: 10,
  windowMs: 15 * MINUTE,
  lockMs: 15 * MINUTE,
  ipLimit: 50,
  ipBlockMs: 15 * MINUTE,
  bypassIntervalMs: 15_000,
};

/** Returns the policy that the configuration sets, with the fixed delays, window and interval. */
export function lockoutPolicyOf(config: {
  lockout: { threshold: number; durationSeconds: number; addressLimit: number };
}): LockoutPolicy {
  const { threshold, durationSeconds, addressLimit } = config.lockout;

  return {
    ...DEFAULT_LOCKOUT_POLICY,
    lockAfter: threshold,
    delayAfter: Math.ceil(threshold / 2),
    lockMs: durationSeconds * 1000,
    ipLimit: addressLimit,
  };
}

/**
 * Decision of the limiter on one attempt. For `proceed` and `bypass`, wait `waitMs` and then check
 * the password or code. For the others, reject the attempt without checking.
 */
export type GateDecision = 'proceed' | 'bypass' | 'locked' | 'throttled' | 'ip_blocked';

export interface Attempt {
  decision: GateDecision;
  waitMs: number;
  /** True when this attempt locked the account, so the caller records the lock. */
  newlyLocked: boolean;
  /** The account's failures in the window, this attempt included. */
  failures: number;
  /** Keys of the attempt, for succeeded() and failed(). */
  readonly account: string;
  readonly ip: string;
}

export interface AccountStatus {
  failures: number;
  locked: boolean;
  /** Milliseconds until the lock ends, when locked. */
  lockRemainingMs: number;
}

/**
 * Counts failed sign-in steps per account (canonical username) and per client address. Each
 * attempt is counted as a failure when it starts, so parallel attempts never slip past a limit;
 * succeeded() takes that count back.
 */
export interface RateLimiter {
  readonly policy: LockoutPolicy;
  begin(username: string, ip: string): Promise<Attempt>;
  /** Called after a failed check; returns true when the failure locked the account. */
  failed(attempt: Attempt): Promise<boolean>;
  succeeded(attempt: Attempt): Promise<void>;
  status(username: string): Promise<AccountStatus>;
  /** Clears the account's counters and lock; returns true when there was something to clear. */
  unlock(username: string): Promise<boolean>;
}

/**
 * Returns the account part of the keys: a digest of the canonical username, so that Redis never
 * stores what people type in the username field (sometimes a password).
 */
export function accountTag(username: string): string {
  return createHash('sha256').update(canonicalUsername(username)).digest('hex').slice(0, 32);
}

/* Key layout under `${prefix}rl:`. The braces are Redis Cluster hash tags: each script only
 * touches keys of one account or of one address, so they share a slot.
 *   {a:<tag>}:fails    failures of the account in the window
 *   {a:<tag>}:lock     present while the account is locked
 *   {a:<tag>}:next     epoch ms of the next free slot while attempts are delayed
 *   {a:<tag>}:bypass   epoch ms of the next free slot for clean addresses during a lock
 *   {ip:<address>}:fails   failures from the address (an IPv6 /64) in the window
 */
function accountKeys(prefix: string, tag: string): string[] {
  return ['fails', 'lock', 'next', 'bypass'].map((name) => `${prefix}rl:{a:${tag}}:${name}`);
}

/**
 * Returns the address that failures count against: an IPv4 address itself, and for IPv6 its /64
 * network, because one host is usually given a whole /64 and could use a new address per attempt.
 */
export function addressGroup(ip: string): string {
  const address = ip.split('%')[0] ?? '';
  if (isIP(address) !== 6) return ip;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1] as string;
  const [head = '', tail] = address.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  const groups = [...headGroups, ...missing, ...tailGroups];
  // An embedded IPv4 address counts as one group here instead of two. It only ever sits in the
  // last 64 bits, so the network part stays right.
  const network = groups.slice(0, 4).map((group) => parseInt(group, 16).toString(16));

  return `${network.join(':')}::/64`;
}

const ipKey = (prefix: string, ip: string) => `${prefix}rl:{ip:${addressGroup(ip)}}:fails`;

// KEYS[1] address failures. ARGV: limit, window ms, block ms. Returns {blocked, prior failures}.
const IP_BEGIN = `
local prior = tonumber(redis.call('GET', KEYS[1]) or '0')
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
if prior >= tonumber(ARGV[1]) then return {1, prior} end
if count >= tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {0, prior}
`;

// KEYS: fails, lock, next, bypass. ARGV: delayAfter, baseDelayMs, maxDelayMs, lockAfter,
// windowMs, lockMs, bypassIntervalMs, address clean (1 or 0).
// Returns {decision, wait ms, newly locked (1 or 0), failures}.
const ACCOUNT_BEGIN = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local delayAfter, baseDelay, maxDelay = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lockAfter, lockMs, bypassMs = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7])
local prior = tonumber(redis.call('GET', KEYS[1]) or '0')
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5], 'NX')
local locked = redis.call('EXISTS', KEYS[2]) == 1
local newly = 0
if not locked and prior >= lockAfter then
  redis.call('SET', KEYS[2], '1', 'PX', lockMs)
  redis.call('PEXPIRE', KEYS[1], lockMs)
  redis.call('DEL', KEYS[3])
  locked = true
  newly = 1
end
if locked then
  if ARGV[8] ~= '1' then return {'locked', 0, newly, count} end
  local slot = math.max(now, tonumber(redis.call('GET', KEYS[4]) or '0'))
  local wait = slot - now
  if wait > bypassMs then return {'locked', 0, newly, count} end
  redis.call('SET', KEYS[4], slot + bypassMs, 'PX', wait + bypassMs)
  return {'bypass', wait, newly, count}
end
if prior >= delayAfter then
  local delay = math.min(baseDelay * 2 ^ (prior - delayAfter), maxDelay)
  local slot = math.max(now, tonumber(redis.call('GET', KEYS[3]) or '0')) + delay
  local wait = slot - now
  if wait > maxDelay then return {'throttled', 0, newly, count} end
  redis.call('SET', KEYS[3], slot, 'PX', wait)
  return {'proceed', wait, newly, count}
end
return {'proceed', 0, newly, count}
`;

// KEYS: fails, lock, next. ARGV: lockAfter, lockMs. Locks when the recorded failures reach the
// limit and no lock is in place. Returns 1 when it locked.
const ACCOUNT_FAILED = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count < tonumber(ARGV[1]) or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[3])
return 1
`;

// KEYS: counters to take one count back from. A counter that reaches zero is deleted, so a
// successful sign-in leaves no key behind, and a missing key stays missing.
const TAKE_BACK = `
for _, key in ipairs(KEYS) do
  if redis.call('DECR', key) <= 0 then redis.call('DEL', key) end
end
return 0
`;

type Reply = [string | number, number, number, number];

interface ScriptedRedis {
  idpRateIpBegin(key: string, ...args: number[]): Promise<[number, number]>;
  idpRateAccountBegin(...keysAndArgs: (string | number)[]): Promise<Reply>;
  idpRateAccountFailed(...keysAndArgs: (string | number)[]): Promise<number>;
  idpRateTakeBack(count: number, ...keys: string[]): Promise<number>;
}

/** Limiter on Redis, shared by every node. Each step is one Lua script, so it is atomic. */
export class RedisRateLimiter implements RateLimiter {
  readonly policy: LockoutPolicy;
  readonly #redis: RedisClient & ScriptedRedis;
  readonly #prefix: string;

  constructor(redis: RedisClient, prefix: string, policy: LockoutPolicy = DEFAULT_LOCKOUT_POLICY) {
    this.policy = policy;
    this.#prefix = prefix;
    // defineCommand runs EVALSHA and falls back to EVAL when Redis lost its script cache.
    redis.defineCommand('idpRateIpBegin', { numberOfKeys: 1, lua: IP_BEGIN });
    redis.defineCommand('idpRateAccountBegin', { numberOfKeys: 4, lua: ACCOUNT_BEGIN });
    redis.defineCommand('idpRateAccountFailed', { numberOfKeys: 3, lua: ACCOUNT_FAILED });
    redis.defineCommand('idpRateTakeBack', { lua: TAKE_BACK });
    this.#redis = redis as RedisClient & ScriptedRedis;
  }

  async begin(username: string, ip: string): Promise<Attempt> {
    const p = this.policy;
    const account = accountTag(username);
    const [blocked, ipPrior] = await this.#redis.idpRateIpBegin(
      ipKey(this.#prefix, ip),
      p.ipLimit,
      p.windowMs,
      p.ipBlockMs,
    );
    if (blocked === 1) {
      return { decision: 'ip_blocked', waitMs: 0, newlyLocked: false, failures: 0, account, ip };
    }
    const [decision, waitMs, newly, failures] = await this.#redis.idpRateAccountBegin(
      ...accountKeys(this.#prefix, account),
      p.delayAfter,
      p.baseDelayMs,
      p.maxDelayMs,
      p.lockAfter,
      p.windowMs,
      p.lockMs,
      p.bypassIntervalMs,
      ipPrior === 0 ? 1 : 0,
    );

    return {
      decision: String(decision) as GateDecision,
      waitMs: Number(waitMs),
      newlyLocked: Number(newly) === 1,
      failures: Number(failures),
      account,
      ip,
    };
  }

  async failed(attempt: Attempt): Promise<boolean> {
    if (attempt.decision === 'ip_blocked') return false;
    const [fails, lock, next] = accountKeys(this.#prefix, attempt.account) as [
      string,
      string,
      string,
    ];
    const locked = await this.#redis.idpRateAccountFailed(
      fails,
      lock,
      next,
      this.policy.lockAfter,
      this.policy.lockMs,
    );

    return Number(locked) === 1;
  }

  async succeeded(attempt: Attempt): Promise<void> {
    // Two calls, since the keys live in different Cluster slots.
    await this.#redis.idpRateTakeBack(1, ipKey(this.#prefix, attempt.ip));
    await this.#redis.idpRateTakeBack(1, accountKeys(this.#prefix, attempt.account)[0] as string);
  }

  async status(username: string): Promise<AccountStatus> {
    const [fails, lock] = accountKeys(this.#prefix, accountTag(username)) as [string, string];
    const [count, remaining] = await Promise.all([this.#redis.get(fails), this.#redis.pttl(lock)]);

    return {
      failures: Number(count ?? 0),
      locked: remaining > 0,
      lockRemainingMs: Math.max(0, remaining),
    };
  }

  async unlock(username: string): Promise<boolean> {
    return (await this.#redis.del(...accountKeys(this.#prefix, accountTag(username)))) > 0;
  }
}

interface Counter {
  value: number;
  expiresAt: number;
}

/**
 * Limiter with the same rules kept in this process, for a single node without Redis. The methods
 * never await, so each one runs without interruption, as atomic as a script.
 */
export class MemoryRateLimiter implements RateLimiter {
  readonly policy: LockoutPolicy;
  readonly #entries = new Map<string, Counter>();
  readonly #now: () => number;

  constructor(policy: LockoutPolicy = DEFAULT_LOCKOUT_POLICY, now: () => number = Date.now) {
    this.policy = policy;
    this.#now = now;
  }

  #get(key: string): number | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.#now()) {
      this.#entries.delete(key);

      return undefined;
    }

    return entry.value;
  }

  #set(key: string, value: number, ttlMs: number): void {
    this.#entries.set(key, { value, expiresAt: this.#now() + ttlMs });
  }

  /** Adds one, starting a window of ttlMs when the counter is new. */
  #increment(key: string, ttlMs: number): number {
    const entry = this.#get(key) === undefined ? undefined : this.#entries.get(key);
    if (!entry) {
      this.#set(key, 1, ttlMs);

      return 1;
    }
    entry.value += 1;

    return entry.value;
  }

  #expire(key: string, ttlMs: number): void {
    const entry = this.#entries.get(key);
    if (entry) entry.expiresAt = this.#now() + ttlMs;
  }

  #sweep(): void {
    if (this.#entries.size < 10_000) return;
    for (const key of this.#entries.keys()) this.#get(key);
  }

  #lock(keys: string[]): void {
    const [fails, lock, next] = keys as [string, string, string];
    this.#set(lock, 1, this.policy.lockMs);
    this.#expire(fails, this.policy.lockMs);
    this.#entries.delete(next);
  }

  begin(username: string, ip: string): Promise<Attempt> {
    this.#sweep();
    const p = this.policy;
    const now = this.#now();
    const account = accountTag(username);
    const base = { waitMs: 0, newlyLocked: false, account, ip };
    const ipCounter = ipKey('', ip);
    const ipPrior = this.#get(ipCounter) ?? 0;
    const ipCount = this.#increment(ipCounter, p.windowMs);
    if (ipPrior >= p.ipLimit) {
      return Promise.resolve({ ...base, decision: 'ip_blocked', failures: 0 });
    }
    if (ipCount >= p.ipLimit) this.#expire(ipCounter, p.ipBlockMs);

    const keys = accountKeys('', account);
    const [fails, lock, next, bypass] = keys as [string, string, string, string];
    const prior = this.#get(fails) ?? 0;
    const failures = this.#increment(fails, p.windowMs);
    let locked = this.#get(lock) !== undefined;
    let newlyLocked = false;
    if (!locked && prior >= p.lockAfter) {
      this.#lock(keys);
      locked = true;
      newlyLocked = true;
    }
    const result = { ...base, newlyLocked, failures };
    if (locked) {
      if (ipPrior !== 0) return Promise.resolve({ ...result, decision: 'locked' });
      const slot = Math.max(now, this.#get(bypass) ?? 0);
      const waitMs = slot - now;
      if (waitMs > p.bypassIntervalMs) return Promise.resolve({ ...result, decision: 'locked' });
      this.#set(bypass, slot + p.bypassIntervalMs, waitMs + p.bypassIntervalMs);

      return Promise.resolve({ ...result, decision: 'bypass', waitMs });
    }
    if (prior >= p.delayAfter) {
      const delay = Math.min(p.baseDelayMs * 2 ** (prior - p.delayAfter), p.maxDelayMs);
      const slot = Math.max(now, this.#get(next) ?? 0) + delay;
      const waitMs = slot - now;
      if (waitMs > p.maxDelayMs) return Promise.resolve({ ...result, decision: 'throttled' });
      this.#set(next, slot, waitMs);

      return Promise.resolve({ ...result, decision: 'proceed', waitMs });
    }

    return Promise.resolve({ ...result, decision: 'proceed' });
  }

  failed(attempt: Attempt): Promise<boolean> {
    if (attempt.decision === 'ip_blocked') return Promise.resolve(false);
    const keys = accountKeys('', attempt.account);
    const [fails, lock] = keys as [string, string];
    if ((this.#get(fails) ?? 0) < this.policy.lockAfter || this.#get(lock) !== undefined) {
      return Promise.resolve(false);
    }
    this.#lock(keys);

    return Promise.resolve(true);
  }

  succeeded(attempt: Attempt): Promise<void> {
    for (const key of [ipKey('', attempt.ip), accountKeys('', attempt.account)[0] as string]) {
      const entry = this.#get(key) === undefined ? undefined : this.#entries.get(key);
      if (entry) entry.value -= 1;
      if (entry && entry.value <= 0) this.#entries.delete(key);
    }

    return Promise.resolve();
  }

  status(username: string): Promise<AccountStatus> {
    const [fails, lock] = accountKeys('', accountTag(username)) as [string, string];
    const lockEntry = this.#get(lock) === undefined ? undefined : this.#entries.get(lock);
    const remaining = lockEntry ? lockEntry.expiresAt - this.#now() : 0;

    return Promise.resolve({
      failures: this.#get(fails) ?? 0,
      locked: remaining > 0,
      lockRemainingMs: Math.max(0, remaining),
    });
  }

  unlock(username: string): Promise<boolean> {
    let found = false;
    for (const key of accountKeys('', accountTag(username))) {
      if (this.#get(key) !== undefined) found = true;
      this.#entries.delete(key);
    }

    return Promise.resolve(found);
  }
}

/** Returns the shared limiter when Redis is configured, otherwise one for this process only. */
export function createRateLimiter(
  redis: RedisClient | undefined,
  prefix: string,
  policy: LockoutPolicy = DEFAULT_LOCKOUT_POLICY,
): RateLimiter {
  return redis ? new RedisRateLimiter(redis, prefix, policy) : new MemoryRateLimiter(policy);
}

/**
 * Wraps a Redis limiter so that a Redis outage is reported to the monitor and becomes the 503 page,
 * as it does for sessions. Other errors pass unchanged.
 */
export function watchRateLimiter(limiter: RateLimiter, monitor: DependencyMonitor): RateLimiter {
  const guard =
    <Args extends unknown[], Result>(method: (...args: Args) => Promise<Result>) =>
    async (...args: Args): Promise<Result> => {
      const startedAt = performance.now();
      try {
        return await method.apply(limiter, args);
      } catch (error) {
        if (!isRedisOutage(error)) throw error;
        monitor.markDown('redis', error, startedAt);
        throw unavailableError(error);
      }
    };

  return {
    policy: limiter.policy,
    begin: guard(limiter.begin),
    failed: guard(limiter.failed),
    succeeded: guard(limiter.succeeded),
    status: guard(limiter.status),
    unlock: guard(limiter.unlock),
  };
}
