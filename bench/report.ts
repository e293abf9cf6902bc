import { cpus, loadavg, totalmem } from 'node:os';
import type { MemoryFigures } from './memory.ts';
import type { ContentionFigures, SignInFigures } from './signin.ts';
import type { Comparison } from './throughput.ts';

export interface BenchResults {
  command: string;
  startedAt: Date;
  seconds: number;
  loadAverage: number;
  comparisons: Comparison[];
  signIn?: SignInFigures;
  contention?: ContentionFigures;
  memory?: MemoryFigures;
  /** Error lines idp logged during the run. */
  idpErrors: number;
}

export const START_MARK =
  '<!-- bench:start (written by npm run bench; edits inside are replaced) -->';
export const END_MARK = '<!-- bench:end -->';

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;

  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

const whole = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : 'n/a');
const ratio = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

function spread(values: number[], format: (n: number) => string): string {
  if (values.length < 2) return format(median(values));

  return `${format(median(values))} (${format(Math.min(...values))}–${format(Math.max(...values))})`;
}

function throughputTable(comparisons: Comparison[]): string[] {
  const rows = comparisons.map((c) => {
    const idp = median(c.idp.map((r) => r.rps));
    const base = median(c.baseline.map((r) => r.rps));
    const failures = [...c.idp, ...c.baseline].reduce((sum, r) => sum + r.failures, 0);

    return `| ${c.label} | ${spread(
      c.idp.map((r) => r.rps),
      whole,
    )} | ${spread(
      c.baseline.map((r) => r.rps),
      whole,
    )} | **${ratio(idp / base)}** | ${whole(median(c.idp.map((r) => r.cpuMicros)))} / ${whole(median(c.baseline.map((r) => r.cpuMicros)))} | ${ms(median(c.idp.map((r) => r.p50)))} / ${ms(median(c.idp.map((r) => r.p99)))} | ${ms(median(c.baseline.map((r) => r.p50)))} / ${ms(median(c.baseline.map((r) => r.p99)))} | ${failures} |`;
  });

  return [
    '| scenario | idp req/s | baseline req/s | idp / baseline | server CPU µs per request, idp / baseline | idp p50 / p99 ms | baseline p50 / p99 ms | failed requests |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ];
}

interface Goal {
  name: string;
  target: string;
  measured: string;
  met: boolean;
}

/**
 * Returns the sign-ins per second that this machine allows if idp spends CPU on hashing alone.
 * Each sign-in then costs one verification, at the rate measured with every core hashing, plus
 * the CPU time of the load generator and the rest measured during the runs. No server does better
 * here, so a sign-in goal above this rate cannot be met on this machine.
 */
export function signInCeiling(figures: SignInFigures): number {
  const hashMs = (figures.hash.cores * 1000) / figures.hash.parallelRate;

  return (figures.hash.cores * 1000) / (hashMs + figures.cpu.loadGenerator + figures.cpu.rest);
}

function goals(results: BenchResults): Goal[] {
  const list: Goal[] = [];
  const rpsRatio = (label: string) => {
    const c = results.comparisons.find((item) => item.label === label);

    return c ? median(c.idp.map((r) => r.rps)) / median(c.baseline.map((r) => r.rps)) : undefined;
  };
  for (const [label, target] of [
    ['token: code exchange', 0.85],
    ['token: refresh (rotating)', 0.85],
    ['introspection', 0.95],
  ] as const) {
    const value = rpsRatio(label);
    if (value !== undefined) {
      list.push({
        name: `${label}, req/s against the baseline`,
        target: `≥ ${target}`,
        measured: ratio(value),
        met: value >= target,
      });
    }
  }
  if (results.signIn) {
    const value = median(results.signIn.rates) / results.signIn.hash.bound;
    const ceiling = signInCeiling(results.signIn) / results.signIn.hash.bound;
    list.push({
      name: 'sign-ins/s against the hashing bound',
      target: '≥ 0.8',
      measured: `${ratio(value)} (this machine allows at most ${ratio(ceiling)})`,
      met: value >= 0.8,
    });
  }
  if (results.contention) {
    const value = results.contention.underLoad.p99 / results.contention.atRest.p99;
    list.push({
      name: 'token p99 under sign-in load against at rest',
      target: '≤ 3',
      measured: ratio(value),
      met: value <= 3,
    });
  }
  if (results.memory) {
    const m = results.memory;
    list.push({
      name: 'Redis bytes per session',
      target: '≤ 4096',
      measured: whole(m.redisBytesPerSession),
      met: m.redisBytesPerSession <= 4096,
    });
    const extrapolation = m.extrapolated ? ` (extrapolated from ${whole(m.sessions)})` : '';
    list.push({
      name: 'idp RSS at 10,000 sessions, right after the sign-ins',
      target: '≤ 200 MiB',
      measured: `${mib(m.rssAt10k)}${extrapolation}`,
      met: m.rssAt10k <= 200 * 2 ** 20,
    });
    list.push({
      name: 'idp RSS at 10,000 sessions, once idp is idle',
      target: '≤ 200 MiB',
      measured: `${mib(m.rssReleasedAt10k)}${extrapolation}`,
      met: m.rssReleasedAt10k <= 200 * 2 ** 20,
    });
  }

  return list;
}

/** Renders the report as Markdown: how it was made, one table per kind of figure, the goals. */
export function renderReport(results: BenchResults): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const lines = [
    `Run on ${results.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC with \`${results.command}\`, ${Math.round(results.seconds)} s in all.`,
    `Machine: ${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB memory, Node ${process.version}, load average ${results.loadAverage.toFixed(2)} when the run started.`,
    '',
  ];
  if (results.comparisons.length > 0) {
    const runs = results.comparisons[0]?.idp.length ?? 0;
    lines.push(
      `### Throughput, idp against the bare oidc-provider`,
      '',
      `Requests per second: median of ${runs} runs, with the slowest and fastest in brackets. Latency: median over the runs of each run's p50 and p99, successful responses only.`,
      '',
      ...throughputTable(results.comparisons),
      '',
    );
  }
  if (results.signIn) {
    const s = results.signIn;
    lines.push(
      '### Interactive sign-in',
      '',
      'Authorization request, login page, password form, TOTP form with the current code, redirect back with the code, code exchange; a new browser and another account each time.',
      '',
      '| argon2id per hash, wall / CPU | hashing bound (cores / CPU time per hash) | hashing alone, all cores at once | sign-ins/s | against the bound | against hashing alone | sign-in p50 / p99 | failed |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      `| ${ms(s.hash.msPerHash)} / ${ms(s.hash.cpuMsPerHash)} ms | ${ratio(s.hash.bound)}/s (${s.hash.cores} cores) | ${ratio(s.hash.parallelRate)}/s | ${spread(s.rates, ratio)} | **${ratio(median(s.rates) / s.hash.bound)}** | ${ratio(median(s.rates) / s.hash.parallelRate)} | ${ms(s.p50)} / ${ms(s.p99)} ms | ${s.failures} |`,
      '',
      'Where the CPU time of one sign-in went, during the runs. The sign-ins/s that the machine allows when all of it is spent this way is cores / total. The last column is the most this machine allows at all: the same split with idp spending nothing but one verification per sign-in, at the rate of hashing on every core.',
      '',
      '| idp (hashing included) | the load generator | the rest: Redis, Postgres, kernel | total | cores / total | idp hashing only |',
      '| --- | --- | --- | --- | --- | --- |',
      `| ${ms(s.cpu.idp)} ms | ${ms(s.cpu.loadGenerator)} ms | ${ms(s.cpu.rest)} ms | ${ms(s.cpu.idp + s.cpu.loadGenerator + s.cpu.rest)} ms | ${ratio((s.hash.cores * 1000) / (s.cpu.idp + s.cpu.loadGenerator + s.cpu.rest))}/s | ${ratio(signInCeiling(s))}/s, **${ratio(signInCeiling(s) / s.hash.bound)}** of the bound |`,
      '',
    );
  }
  if (results.contention) {
    const c = results.contention;
    lines.push(
      '### Token endpoint during sign-ins',
      '',
      'Refresh grants at a steady rate, alone and then while browsers sign in as fast as they can.',
      '',
      '| | p50 ms | p99 ms |',
      '| --- | --- | --- |',
      `| at rest | ${ms(c.atRest.p50)} | ${ms(c.atRest.p99)} |`,
      `| under sign-in load (${ratio(c.signInsPerSecond)} sign-ins/s) | ${ms(c.underLoad.p50)} | ${ms(c.underLoad.p99)} |`,
      `| ratio | ${ratio(c.underLoad.p50 / c.atRest.p50)} | **${ratio(c.underLoad.p99 / c.atRest.p99)}** |`,
      '',
    );
  }
  if (results.memory) {
    const m = results.memory;
    const kinds = Object.entries(m.byKind)
      .sort(([, a], [, b]) => b.bytes - a.bytes)
      .map(
        ([kind, v]) =>
          `| ${kind} | ${whole(v.keys)} | ${whole(v.bytes / v.keys)} | ${whole(v.bytes / Math.max(1, m.sessions))} |`,
      );
    lines.push(
      '### Memory',
      '',
      `${whole(m.sessions)} browsers signed in (code exchanged, tokens kept) after idp's Redis keys were cleared: **${whole(m.redisBytesPerSession)} Redis bytes per session** (MEMORY USAGE over every key a session keeps), and ${whole(m.codeBytesPerSession)} more per session for the consumed authorization codes, which expire 60 s after issue. idp RSS ${mib(m.rssBefore)} before, ${mib(m.rssHalf)} after the first half of the sessions and ${mib(m.rssAfter)} after all of them (JavaScript heap in use ${mib(m.heapBefore)} and ${mib(m.heapAfter)}, both after a full collection); at 10,000 sessions **${mib(m.rssAt10k)}**${m.extrapolated ? ', extrapolated linearly from the growth over the second half' : ''}. Once idp has given back the heap pages that V8 keeps for reuse, as it does when a busy period ends, ${mib(m.rssHalfReleased)} halfway and ${mib(m.rssAfterReleased)} at the end; at 10,000 sessions **${mib(m.rssReleasedAt10k)}**.`,
      '',
      '| key kind | keys | bytes per key | bytes per session |',
      '| --- | --- | --- | --- |',
      ...kinds,
      '',
    );
  }
  const list = goals(results);
  if (list.length > 0) {
    lines.push(
      '### Goals',
      '',
      '| goal | target | measured | |',
      '| --- | --- | --- | --- |',
      ...list.map(
        (g) => `| ${g.name} | ${g.target} | ${g.measured} | ${g.met ? 'met' : '**missed**'} |`,
      ),
      '',
    );
  }
  lines.push(`idp logged ${results.idpErrors} error lines during the run.`);

  return lines.join('\n');
}

/** Puts the report between the markers of the document, replacing the previous one. */
export function replaceReport(document: string, report: string): string {
  const start = document.indexOf(START_MARK);
  const end = document.indexOf(END_MARK);
  const block = `${START_MARK}\n\n${report}\n\n${END_MARK}`;
  if (start === -1 || end === -1) return `${document.trimEnd()}\n\n${block}\n`;

  return `${document.slice(0, start)}${block}${document.slice(end + END_MARK.length)}`;
}

export function currentLoad(): number {
  return loadavg()[0] ?? 0;
}
