import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { type Adapter, type AdapterConstructor, type AdapterPayload, errors } from 'oidc-provider';
import { readAhead, type RequestReads } from './read-ahead.ts';
import type { CacheEntry, TokenCache } from './token-cache.ts';

// Models whose records carry a grantId and are deleted when the grant is revoked.
export const GRANTABLE_MODELS: ReadonlySet<string> = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/**
 * Models that oidc-provider consumes to mark a single use: codes, and refresh tokens when they
 * rotate. oidc-provider rejects a consumed one, but two requests that read it before either
 * consumes it would both pass that check, so consume itself rejects the second.
 */
export const SINGLE_USE_MODELS: ReadonlySet<string> = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/** oidc-provider's details for a second use that comes later, used here too so both log alike. */
export const SECOND_USE_DETAILS: Readonly<Record<string, string>> = {
  AuthorizationCode: 'authorization code already consumed',
  RefreshToken: 'refresh token already used',
};

/**
 * Returns the invalid_grant error for a single-use record consumed a second time. The caller has
 * revoked the grant by then, as oidc-provider does when the second use comes later.
 */
export function secondUse(model: string): Error {
  return new errors.InvalidGrant(SECOND_USE_DETAILS[model] ?? `${model} already consumed`);
}

// Models whose records carry an accountId and are indexed per account, so that every session
// and grant of one user can be ended at once (after a password change or a 2FA reset).
export const ACCOUNT_MODELS: ReadonlySet<string> = new Set(['Session', 'Grant']);

/** Records that revokeAccount deleted. */
export interface EndedSessions {
  /** How many sessions and grants were deleted. */
  ended: number;
  /** The payloads of the deleted sessions, so that their apps can be sent logout tokens. */
  sessions: AdapterPayload[];
}

/** An adapter class that can also end everything an account holds. */
export interface SessionStoreAdapter extends AdapterConstructor {
  /** Deletes what revokeByAccountId deletes, and returns the deleted sessions too. */
  revokeAccount(accountId: string, options?: { keepSessionId?: string }): Promise<EndedSessions>;
  /**
   * Deletes every Session and Grant of the account, and the tokens and codes issued under those
   * grants. `keepSessionId` spares one session and the grants it refers to, so the user's current
   * browser stays signed in. Returns how many sessions and grants were deleted.
   */
  revokeByAccountId(accountId: string, options?: { keepSessionId?: string }): Promise<number>;
}

// Models looked up by a token value at the start of a request, whose Grant oidc-provider looks up
// right after. Their find reads the record and its Grant in one round trip.
const GRANT_READ_AHEAD_MODELS: ReadonlySet<string> = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
]);

/**
 * Models that introspection and userinfo read, and that a node may keep copies of while Redis
 * reports their changes. A session-bound token is checked against its Session, which is found by
 * its uid.
 */
const CACHED_MODELS: ReadonlySet<string> = new Set([
  'AccessToken',
  'RefreshToken',
  'Grant',
  'Session',
]);

// The maximum length of an id whose record the copies keep. oidc-provider's ids and uids are at
// most 43 characters with its default of 256 random bits per token.
const MAX_CACHED_ID_LENGTH = 128;

/** Returns the key prefixes of the records and indexes a TokenCache keeps for an adapter. */
export function tokenCachePrefixes(prefix: string): string[] {
  const records = [...CACHED_MODELS].map((model) => `${prefix}oidc:${model}:`);

  return [...records, `${prefix}oidc:uid:Session:`];
}

/*
 * Key layout, all under `${prefix}oidc:`:
 *   <Model>:<id>              record, payload as a JSON string
 *   uid:<Model>:<uid>         id of the Session with that uid
 *   userCode:<Model>:<code>   id of the DeviceCode with that user code
 *   grant:<grantId>           set of record keys issued under the grant
 *   account:<accountId>       set of the Session and Grant record keys of the account
 * Model names start upper case, so index keys never collide with record keys.
 */

interface LuaScript {
  source: string;
  sha: string;
}

function lua(source: string): LuaScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

// Lua helpers. forget() deletes the uid, userCode, grant and account index entries of one
// record, and revokeGrant() deletes every record of a grant index and the index itself, and
// returns the record keys the index contained.
// ARGV[1] is the key base `${prefix}oidc:`, and record keys are `<base><Model>:<id>`.
const FORGET = `
local base = ARGV[1]
local function forget(key, raw)
  local rest = string.sub(key, #base + 1)
  local sep = string.find(rest, ':', 1, true)
  if not sep then return end
  local model = string.sub(rest, 1, sep - 1)
  local id = string.sub(rest, sep + 1)
  local ok, data = pcall(cjson.decode, raw)
  if not ok or type(data) ~= 'table' then return end
  if model == 'Session' and type(data.uid) == 'string' then
    local k = base .. 'uid:' .. model .. ':' .. data.uid
    if redis.call('GET', k) == id then redis.call('DEL', k) end
  end
  if type(data.userCode) == 'string' then
    local k = base .. 'userCode:' .. model .. ':' .. data.userCode
    if redis.call('GET', k) == id then redis.call('DEL', k) end
  end
  if type(data.grantId) == 'string' then
    redis.call('SREM', base .. 'grant:' .. data.grantId, key)
  end
  if (model == 'Session' or model == 'Grant') and type(data.accountId) == 'string' then
    redis.call('SREM', base .. 'account:' .. data.accountId, key)
  end
end
local function deleteRecord(key)
  local raw = redis.call('GET', key)
  if not raw then return false end
  redis.call('DEL', key)
  forget(key, raw)
  return true
end
local function revokeGrant(grantKey)
  local members = redis.call('SMEMBERS', grantKey)
  for _, key in ipairs(members) do deleteRecord(key) end
  redis.call('DEL', grantKey)
  return members
end
`;

// KEYS[1] record key
const DESTROY = lua(`${FORGET}
if deleteRecord(KEYS[1]) then return 1 end
return 0
`);

// KEYS[1] grant index key
const REVOKE = lua(`${FORGET}
return revokeGrant(KEYS[1])
`);

// KEYS[1] account index key, ARGV[2] account id, ARGV[3] record key of the session to keep or ''.
// A member whose record now belongs to another account (a browser that signed in as someone
// else) is only dropped from the index.
const REVOKE_ACCOUNT = lua(`${FORGET}
local keep = {}
if ARGV[3] ~= '' then
  keep[ARGV[3]] = true
  local raw = redis.call('GET', ARGV[3])
  local ok, data = pcall(cjson.decode, raw or '')
  if ok and type(data) == 'table' and type(data.authorizations) == 'table' then
    for _, entry in pairs(data.authorizations) do
      if type(entry) == 'table' and type(entry.grantId) == 'string' then
        keep[base .. 'Grant:' .. entry.grantId] = true
      end
    end
  end
end
local ended = 0
-- The reply: the count first, then the raw payload of every deleted session.
local reply = {0}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not keep[key] then
    redis.call('SREM', KEYS[1], key)
    local raw = redis.call('GET', key)
    local ok, data = pcall(cjson.decode, raw or '')
    if ok and type(data) == 'table' and data.accountId == ARGV[2] then
      redis.call('DEL', key)
      forget(key, raw)
      local rest = string.sub(key, #base + 1)
      if string.sub(rest, 1, 6) == 'Grant:' then
        revokeGrant(base .. 'grant:' .. string.sub(rest, 7))
      end
      if string.sub(rest, 1, 8) == 'Session:' then table.insert(reply, raw) end
      ended = ended + 1
    end
  end
end
reply[1] = ended
return reply
`);

// KEYS[1] record key, ARGV[1] key base, ARGV[2] epoch seconds, ARGV[3] '1' for a single-use record.
// The script edits the JSON as text, because a cjson decode and encode would turn empty
// arrays into objects and round numbers to 14 significant digits. It replaces a trailing
// "consumed" member and otherwise appends one. JSON.parse keeps the last duplicate key.
// A single-use record that has a "consumed" member is being used a second time. The script then
// deletes it and its grant, the Grant record included, and returns 'reused' and the deleted keys.
// A single-use record that is gone was found by the caller moments before, so another request
// used and revoked it meanwhile (or it expired), and the reply is 'reused' alone.
const CONSUME = lua(`${FORGET}
local raw = redis.call('GET', KEYS[1])
if not raw then
  if ARGV[3] == '1' then return {'reused'} end
  return 0
end
if string.sub(raw, -1) ~= '}' then return redis.error_reply('stored payload is not a JSON object') end
local s = string.find(raw, ',"consumed":%d+}$')
if s and ARGV[3] == '1' then
  local reply = {'reused'}
  local ok, data = pcall(cjson.decode, raw)
  if ok and type(data) == 'table' and type(data.grantId) == 'string' then
    for _, key in ipairs(revokeGrant(base .. 'grant:' .. data.grantId)) do table.insert(reply, key) end
    local grantKey = base .. 'Grant:' .. data.grantId
    if deleteRecord(grantKey) then table.insert(reply, grantKey) end
  end
  deleteRecord(KEYS[1])
  return reply
end
local body
if s then body = string.sub(raw, 1, s - 1) else body = string.sub(raw, 1, -2) end
local sep = ','
if body == '{' then sep = '' end
redis.call('SET', KEYS[1], body .. sep .. '"consumed":' .. ARGV[2] .. '}', 'KEEPTTL')
return 1
`);

// KEYS[1] index key, ARGV[1] record key prefix `${prefix}oidc:<Model>:`. Returns the id the index
// contains and the record, which is left out when missing.
// It takes one round trip instead of two, because Session.findByUid runs on token requests.
const FIND_BY_INDEX = lua(`
local id = redis.call('GET', KEYS[1])
if not id then return false end
return {id, redis.call('GET', ARGV[1] .. id)}
`);

// KEYS[1] record key, ARGV[1] key base. Returns the record, then, when the record names a grant,
// the grant id and the Grant record (nil when missing). The id is matched in the JSON text, and the
// caller checks it against the parsed record, so a nested "grantId" member cannot mislead it.
const FIND_WITH_GRANT = lua(`
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local grantId = string.match(raw, '"grantId":"([^"]+)"')
if not grantId then return {raw} end
return {raw, grantId, redis.call('GET', ARGV[1] .. 'Grant:' .. grantId)}
`);

// KEYS[1] record key. ARGV[1] payload JSON, ARGV[2] lifetime in ms or '' for none, ARGV[3] record
// id, ARGV[4] uid index key, ARGV[5] userCode index key, ARGV[6] grant index key, ARGV[7] account
// index key. An index key is '' when the record has no such entry. One script costs the server
// and the client less than a MULTI of up to ten commands.
// An index set must live as long as its longest-lived member: PEXPIRE NX sets the TTL of a new
// set and GT only lengthens an existing one.
const UPSERT = lua(`
local ms = ARGV[2]
local function put(key, value)
  if ms == '' then redis.call('SET', key, value) else redis.call('SET', key, value, 'PX', ms) end
end
local function index(setKey)
  if setKey == '' then return end
  redis.call('SADD', setKey, KEYS[1])
  if ms == '' then
    redis.call('PERSIST', setKey)
  else
    redis.call('PEXPIRE', setKey, ms, 'NX')
    redis.call('PEXPIRE', setKey, ms, 'GT')
  end
end
put(KEYS[1], ARGV[1])
if ARGV[4] ~= '' then put(ARGV[4], ARGV[3]) end
if ARGV[5] ~= '' then put(ARGV[5], ARGV[3]) end
index(ARGV[6])
index(ARGV[7])
return 1
`);

async function run(redis: Redis, script: LuaScript, keys: string[], args: string[]) {
  try {
    return await redis.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (err) {
    // Script cache is empty after a Redis restart or on first use.
    if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
      return redis.eval(script.source, keys.length, ...keys, ...args);
    }
    throw err;
  }
}

function parse(raw: unknown): AdapterPayload | undefined {
  return typeof raw === 'string' ? (JSON.parse(raw) as AdapterPayload) : undefined;
}

// Converts expiresIn (seconds) to ms. Redis rejects a TTL of zero or less, so a record
// that is already expired gets 1 ms.
function ttlMs(expiresIn: number | undefined): number | undefined {
  if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn)) return undefined;
  return Math.max(1, Math.round(expiresIn * 1000));
}

/**
 * Creates the Redis adapter class. With `cache`, introspection and userinfo requests read tokens and
 * grants from the node's copies, and writes through this node drop the copies they change at once.
 */
export function createRedisAdapter(
  redis: Redis,
  prefix: string,
  cache?: TokenCache,
): SessionStoreAdapter {
  // Lua scripts build index keys themselves and would miss a client-side prefix.
  if (redis.options.keyPrefix) {
    throw new TypeError('createRedisAdapter: use the prefix argument, not ioredis keyPrefix');
  }
  const base = `${prefix}oidc:`;

  return class RedisAdapter implements Adapter {
    readonly model: string;
    readonly #recordPrefix: string;

    constructor(model: string) {
      // Clients are stored in Postgres, so a Client model here means wrong wiring.
      if (model === 'Client') {
        throw new TypeError(
          'the Redis adapter does not store the Client model: pass oidc-provider a factory that routes Client to the Postgres adapter',
        );
      }
      this.model = model;
      this.#recordPrefix = `${base}${model}:`;
    }

    #key(id: string): string {
      return this.#recordPrefix + id;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      if (this.model === 'Grant') readAhead.getStore()?.grants.delete(id);
      const key = this.#key(id);
      const json = JSON.stringify(payload);
      const ms = ttlMs(expiresIn);
      const uid = this.model === 'Session' ? payload.uid : undefined;
      const { userCode } = payload;
      const grantId = GRANTABLE_MODELS.has(this.model) ? payload.grantId : undefined;
      const accountId = ACCOUNT_MODELS.has(this.model) ? payload.accountId : undefined;

      // Models without an index entry skip the script and send a plain SET.
      if (!uid && !userCode && !grantId && !accountId) {
        await (ms === undefined ? redis.set(key, json) : redis.set(key, json, 'PX', ms));
        this.#forget(key);
        return;
      }

      // NOTE: members of the grant and account sets stay after their record expires, until
      // destroy, revoke or the set's own TTL removes them, so a busy long-lived set keeps growing.
      const uidKey = uid ? `${base}uid:${this.model}:${uid}` : '';
      await run(
        redis,
        UPSERT,
        [key],
        [
          json,
          ms === undefined ? '' : String(ms),
          id,
          uidKey,
          userCode ? `${base}userCode:${this.model}:${userCode}` : '',
          grantId ? `${base}grant:${grantId}` : '',
          accountId ? `${base}account:${accountId}` : '',
        ],
      );
      this.#forget(key, uidKey);
    }

    // Redis reports the change to every node, this one included. Dropping the copy here as well
    // means that a request following this write on this node never reads the old record.
    #forget(...keys: string[]): void {
      if (cache && CACHED_MODELS.has(this.model)) cache.forget(keys.filter(Boolean));
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      const scope = readAhead.getStore();
      const grants = scope?.grants;
      if (grants && this.model === 'Grant' && grants.has(id)) {
        // Taken once: a later lookup in the same request reads Redis again.
        const grant = grants.get(id);
        grants.delete(id);

        return grant ?? undefined;
      }
      const key = this.#key(id);
      const copies = this.#copiesFor(scope, id);
      const readAheadGrants = GRANT_READ_AHEAD_MODELS.has(this.model) ? grants : undefined;
      const cached = copies?.peek(key);
      if (copies && cached !== undefined) {
        const payload = (cached ?? undefined) as AdapterPayload | undefined;
        const grantId = readAheadGrants ? payload?.grantId : undefined;
        if (readAheadGrants && typeof grantId === 'string') {
          const grant = copies.peek(`${base}Grant:${grantId}`);
          if (grant !== undefined) readAheadGrants.set(grantId, grant as AdapterPayload | null);
        }

        return payload;
      }
      if (!readAheadGrants) {
        const read = async () => parse(await redis.get(key));
        return copies
          ? copies.read(read, (payload) => [[key, payload ?? null, payload?.exp]])
          : read();
      }
      const read = async () => {
        const reply = (await run(redis, FIND_WITH_GRANT, [key], [base])) as
          [string, string?, (string | null)?] | null;
        if (!reply) return undefined;
        const [raw, grantId, grant] = reply;
        const payload = parse(raw);
        // The script finds the grant id in the JSON text; a nested "grantId" member must not count.
        if (grantId === undefined || payload?.grantId !== grantId) return { payload };

        return { payload, grantId, grant: parse(grant) ?? null };
      };
      const found = copies
        ? await copies.read(read, (result): CacheEntry[] => {
            if (!result) return [[key, null]];
            const { payload, grantId, grant } = result;
            const keep: CacheEntry[] = [[key, payload ?? null, payload?.exp]];
            if (grantId !== undefined) keep.push([`${base}Grant:${grantId}`, grant, grant?.exp]);

            return keep;
          })
        : await read();
      if (found?.grantId !== undefined) readAheadGrants.set(found.grantId, found.grant);

      return found?.payload;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const indexKey = `${base}uid:${this.model}:${uid}`;
      const copies = this.#copiesFor(readAhead.getStore(), uid);
      // The index and the record are cached apart, since either can change without the other.
      const cachedId = copies?.peek(indexKey);
      if (cachedId === null) return undefined;
      const cached = typeof cachedId === 'string' ? copies?.peek(this.#key(cachedId)) : undefined;
      let payload = (cached ?? undefined) as AdapterPayload | undefined;
      if (cached === undefined) {
        const read = () => this.#findByIndex(indexKey);
        const found = copies
          ? await copies.read(read, (result): CacheEntry[] =>
              result
                ? [
                    [indexKey, result.id],
                    [this.#key(result.id), result.payload ?? null, result.payload?.exp],
                  ]
                : [[indexKey, null]],
            )
          : await read();
        payload = found?.payload;
      }
      // An index left behind by an overwritten record must not resolve.
      return payload?.uid === uid ? payload : undefined;
    }

    // Reads the id that an index key contains and the record with that id, in one round trip.
    async #findByIndex(indexKey: string) {
      const reply = (await run(redis, FIND_BY_INDEX, [indexKey], [this.#recordPrefix])) as
        [string, string?] | null;

      return reply ? { id: reply[0], payload: parse(reply[1]) } : undefined;
    }

    // Returns the node's copies when this request may use them for this model and id. The ids
    // that oidc-provider issues are short, but a client may send a token of tens of kilobytes, so
    // a longer id is read from Redis and never cached, which keeps the copies' memory bounded.
    #copiesFor(scope: RequestReads | undefined, id: string): TokenCache | undefined {
      return cache?.tracking &&
        scope?.cacheable &&
        CACHED_MODELS.has(this.model) &&
        id.length <= MAX_CACHED_ID_LENGTH
        ? cache
        : undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const indexKey = `${base}userCode:${this.model}:${userCode}`;
      const payload = (await this.#findByIndex(indexKey))?.payload;
      return payload?.userCode === userCode ? payload : undefined;
    }

    async consume(id: string): Promise<void> {
      const key = this.#key(id);
      const reply = await run(
        redis,
        CONSUME,
        [key],
        [base, String(Math.floor(Date.now() / 1000)), SINGLE_USE_MODELS.has(this.model) ? '1' : ''],
      );
      this.#forget(key);
      if (Array.isArray(reply)) {
        readAhead.getStore()?.grants.clear();
        cache?.forget((reply as string[]).slice(1));
        throw secondUse(this.model);
      }
    }

    async destroy(id: string): Promise<void> {
      if (this.model === 'Grant') readAhead.getStore()?.grants.delete(id);
      await run(redis, DESTROY, [this.#key(id)], [base]);
      this.#forget(this.#key(id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      readAhead.getStore()?.grants.delete(grantId);
      const deleted = (await run(redis, REVOKE, [`${base}grant:${grantId}`], [base])) as string[];
      cache?.forget(deleted);
    }

    static async revokeAccount(
      accountId: string,
      options: { keepSessionId?: string } = {},
    ): Promise<EndedSessions> {
      const keep = options.keepSessionId ? `${base}Session:${options.keepSessionId}` : '';
      const [ended, ...sessions] = (await run(
        redis,
        REVOKE_ACCOUNT,
        [`${base}account:${accountId}`],
        [base, accountId, keep],
      )) as [number, ...string[]];
      // The script does not list the tokens it deleted. Ending an account is rare, so dropping
      // every copy costs little.
      cache?.forgetAll();

      return {
        ended: Number(ended),
        sessions: sessions.map((raw) => JSON.parse(raw) as AdapterPayload),
      };
    }

    static async revokeByAccountId(
      accountId: string,
      options: { keepSessionId?: string } = {},
    ): Promise<number> {
      return (await RedisAdapter.revokeAccount(accountId, options)).ended;
    }
  };
}
