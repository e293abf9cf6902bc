import type { BenchOptions } from './options.ts';
import type { BenchServers } from './servers.ts';
import { signInLoad } from './signin.ts';

export interface MemoryFigures {
  sessions: number;
  /**
   * Redis bytes (MEMORY USAGE) of every key a signed-in session keeps, divided by sessions.
   * Consumed authorization codes are left out, because they expire 60 s after issue.
   */
  redisBytesPerSession: number;
  /** Redis bytes per session of the consumed codes still alive when the keys were read. */
  codeBytesPerSession: number;
  /** Average bytes per key kind, such as Session, Grant or AccessToken. */
  byKind: Record<string, { keys: number; bytes: number }>;
  rssBefore: number;
  /** RSS after the first half of the sessions, from which the growth per session is measured. */
  rssHalf: number;
  rssAfter: number;
  /**
   * The same two readings after idp gives back V8's pooled heap pages, as it does when a busy
   * period ends (src/server/idle-memory.ts).
   */
  rssHalfReleased: number;
  rssAfterReleased: number;
  /** JavaScript heap in use before and after, which shows whether idp keeps anything per session. */
  heapBefore: number;
  heapAfter: number;
  /**
   * RSS at 10,000 sessions: measured when the run had that many, else extrapolated linearly from
   * the growth over the second half of the sessions, after the first half warmed idp up.
   */
  rssAt10k: number;
  /** RSS at 10,000 sessions, worked out the same way from the readings after the release. */
  rssReleasedAt10k: number;
  extrapolated: boolean;
}

/** Names the kind of a key: the model of a record, or the index it belongs to. */
function kindOf(key: string, prefix: string): string {
  const rest = key.slice(prefix.length).replace(/^oidc:/, '');
  const first = rest.split(':')[0] ?? '';
  if (first === 'uid' || first === 'userCode') return `${first} index`;
  if (first === 'grant' || first === 'account') return `${first} index`;

  return first;
}

/**
 * Scenario 6: signs `sessions` browsers in (full flow with the code exchange) on idp after clearing
 * its Redis keys, then sums MEMORY USAGE over what they left and reads idp's resident memory.
 */
export async function memoryScenario(
  servers: BenchServers,
  options: BenchOptions,
  pick: () => string,
  log: (line: string) => void,
): Promise<MemoryFigures> {
  const { redis, prefix } = servers.redis;
  const existing = await servers.redis.keys();
  for (let i = 0; i < existing.length; i += 1000) await redis.del(...existing.slice(i, i + 1000));
  const before = await servers.idp.memory();

  // The first sign-ins grow the heap, the compiled code and the hashing threads once, whatever the
  // count, so the growth per session is read over the second half only.
  const halfCount = Math.max(1, Math.floor(options.sessions / 2));
  const first = await signInLoad(servers.idp, pick, options.signinConcurrency, {
    count: halfCount,
  });
  const half = await servers.idp.memory();
  const second = await signInLoad(servers.idp, pick, options.signinConcurrency, {
    count: options.sessions - halfCount,
  });
  const firstSessions = first.durations.length;
  const sessions = firstSessions + second.durations.length;
  const seconds = first.seconds + second.seconds;
  const after = await servers.idp.memory();
  const [rssBefore, rssHalf, rssAfter] = [before.rss, half.rss, after.rss];

  const keys = await servers.redis.keys();
  const byKind: MemoryFigures['byKind'] = {};
  let total = 0;
  let codeBytes = 0;
  for (let i = 0; i < keys.length; i += 500) {
    const batch = keys.slice(i, i + 500);
    const pipeline = redis.pipeline();
    for (const key of batch) pipeline.memory('USAGE', key, 'SAMPLES', 0);
    const replies = (await pipeline.exec()) ?? [];
    replies.forEach(([, bytes], j) => {
      const kind = kindOf(batch[j] as string, prefix);
      const entry = (byKind[kind] ??= { keys: 0, bytes: 0 });
      entry.keys += 1;
      entry.bytes += Number(bytes ?? 0);
      if (kind === 'AuthorizationCode') codeBytes += Number(bytes ?? 0);
      else total += Number(bytes ?? 0);
    });
  }
  const extrapolated = sessions < 10_000;
  // Growth per session between two readings after a full collection, never below zero.
  const at10k = (halfway: number, end: number) => {
    const perSession = Math.max(0, end - halfway) / Math.max(1, sessions - firstSessions);

    return extrapolated ? end + perSession * (10_000 - sessions) : end;
  };
  const rssAt10k = at10k(rssHalf, rssAfter);
  const [rssHalfReleased, rssAfterReleased] = [
    half.rssReleased ?? rssHalf,
    after.rssReleased ?? rssAfter,
  ];
  const rssReleasedAt10k = at10k(rssHalfReleased, rssAfterReleased);
  log(
    `  ${sessions} sessions in ${seconds.toFixed(0)} s: ${(total / Math.max(1, sessions)).toFixed(0)} Redis bytes per session and ${(codeBytes / Math.max(1, sessions)).toFixed(0)} of consumed codes, RSS ${(rssBefore / 2 ** 20).toFixed(0)} -> ${(rssHalf / 2 ** 20).toFixed(0)} -> ${(rssAfter / 2 ** 20).toFixed(0)} MiB (${(rssHalfReleased / 2 ** 20).toFixed(0)} -> ${(rssAfterReleased / 2 ** 20).toFixed(0)} MiB once released), heap in use ${((before.heapUsed ?? 0) / 2 ** 20).toFixed(0)} -> ${((after.heapUsed ?? 0) / 2 ** 20).toFixed(0)} MiB of ${((after.heapTotal ?? 0) / 2 ** 20).toFixed(0)} MiB reserved`,
  );

  return {
    sessions,
    redisBytesPerSession: total / Math.max(1, sessions),
    codeBytesPerSession: codeBytes / Math.max(1, sessions),
    byKind,
    rssBefore,
    rssHalf,
    rssAfter,
    heapBefore: before.heapUsed ?? Number.NaN,
    heapAfter: after.heapUsed ?? Number.NaN,
    rssHalfReleased,
    rssAfterReleased,
    rssAt10k,
    rssReleasedAt10k,
    extrapolated,
  };
}
