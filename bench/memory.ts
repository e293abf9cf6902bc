import type { BenchOptions } from './options.ts';
import type { BenchServers } from './servers.ts';
import { signInLoad } from './signin.ts';

export interface MemoryFigures {
  sessions: number;
  /** Redis bytes (MEMORY USAGE) of every key a signed-in session leaves, divided by sessions. */
  redisBytesPerSession: number;
  /** Average bytes per key kind, such as Session, Grant or AccessToken. */
  byKind: Record<string, { keys: number; bytes: number }>;
  rssBefore: number;
  rssAfter: number;
  /** JavaScript heap in use before and after, which shows whether idp keeps anything per session. */
  heapBefore: number;
  heapAfter: number;
  /** RSS at 10,000 sessions: measured when the run had that many, else extrapolated linearly. */
  rssAt10k: number;
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

  const result = await signInLoad(servers.idp, pick, options.signinConcurrency, {
    count: options.sessions,
  });
  const sessions = result.durations.length;
  const after = await servers.idp.memory();
  const [rssBefore, rssAfter] = [before.rss, after.rss];

  const keys = await servers.redis.keys();
  const byKind: MemoryFigures['byKind'] = {};
  let total = 0;
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
      total += Number(bytes ?? 0);
    });
  }
  const extrapolated = sessions < 10_000;
  // Growth per session from two readings after a full collection; never below what was measured.
  const perSession = Math.max(0, rssAfter - rssBefore) / Math.max(1, sessions);
  const rssAt10k = extrapolated ? rssAfter + perSession * (10_000 - sessions) : rssAfter;
  log(
    `  ${sessions} sessions in ${result.seconds.toFixed(0)} s: ${(total / Math.max(1, sessions)).toFixed(0)} Redis bytes per session, RSS ${(rssBefore / 2 ** 20).toFixed(0)} -> ${(rssAfter / 2 ** 20).toFixed(0)} MiB, heap in use ${((before.heapUsed ?? 0) / 2 ** 20).toFixed(0)} -> ${((after.heapUsed ?? 0) / 2 ** 20).toFixed(0)} MiB`,
  );

  return {
    sessions,
    redisBytesPerSession: total / Math.max(1, sessions),
    byKind,
    rssBefore,
    rssAfter,
    heapBefore: before.heapUsed ?? Number.NaN,
    heapAfter: after.heapUsed ?? Number.NaN,
    rssAt10k,
    extrapolated,
  };
}
