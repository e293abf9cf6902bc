import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '../logger.ts';

type Collector = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let collector: Collector | undefined;

/**
 * Returns V8's collector function, which Node only puts on the global object under --expose-gc.
 * The flag is set only while one new context is created, so the main context gets no `gc` global.
 */
function v8Collector(): Collector {
  if (!collector) {
    setFlagsFromString('--expose-gc');
    try {
      collector = runInNewContext('gc') as Collector;
    } finally {
      setFlagsFromString('--no-expose-gc');
    }
  }

  return collector;
}

/** The outcome of one release: resident memory before and after, and the pause of JavaScript. */
export interface MemoryRelease {
  rssBefore: number;
  rssAfter: number;
  pauseMs: number;
}

/**
 * Runs V8's most thorough collection, which also unmaps the heap pages that V8 keeps for reuse.
 * Ordinary collections keep those pages until V8 judges the process idle. After a burst of
 * requests it may never do so, because its estimate of the allocation rate changes only when a
 * collection runs, and an idle process runs none. JavaScript pauses meanwhile: 40 to 80 ms in
 * the benchmark.
 */
export function releaseFreedMemory(): MemoryRelease {
  const rssBefore = process.memoryUsage.rss();
  const started = performance.now();
  v8Collector()({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  const pauseMs = performance.now() - started;

  return { rssBefore, rssAfter: process.memoryUsage.rss(), pauseMs };
}

export interface IdleMemoryOptions {
  logger: Logger;
  /** How often to look at the event loop and resident memory. */
  checkEveryMs?: number;
  /** Event-loop utilization below which an interval counts as idle. */
  idleBelow?: number;
  /** Growth of resident memory since the last release that makes a release worth its pause. */
  growthBytes?: number;
  /** Event-loop utilization since the previous call, measured by default. */
  utilization?: () => number;
  /** Resident memory in bytes, read from the process by default. */
  rss?: () => number;
  release?: () => MemoryRelease;
}

/** Returns a function that gives the event-loop utilization since its previous call. */
function eventLoopUtilization(): () => number {
  let previous: EventLoopUtilization = performance.eventLoopUtilization();

  return () => {
    const current = performance.eventLoopUtilization();
    const { utilization } = performance.eventLoopUtilization(current, previous);
    previous = current;

    return utilization;
  };
}

/**
 * Gives memory back to the system once a busy period is over. Every `checkEveryMs` it runs
 * `releaseFreedMemory` if the event loop was almost idle over the interval and resident memory
 * grew by `growthBytes` since the last release. A node busier than `idleBelow` never pauses for
 * it, and a node that stays idle releases once.
 */
export class IdleMemoryRelease {
  readonly #logger: Logger;
  readonly #idleBelow: number;
  readonly #growthBytes: number;
  readonly #utilization: () => number;
  readonly #rss: () => number;
  readonly #release: () => MemoryRelease;
  readonly #timer: NodeJS.Timeout;
  // Resident memory after the last release, or at start.
  #settled: number;
  #failed = false;

  constructor(options: IdleMemoryOptions) {
    this.#logger = options.logger;
    this.#idleBelow = options.idleBelow ?? 0.05;
    this.#growthBytes = options.growthBytes ?? 32 * 2 ** 20;
    this.#utilization = options.utilization ?? eventLoopUtilization();
    this.#rss = options.rss ?? (() => process.memoryUsage.rss());
    this.#release = options.release ?? releaseFreedMemory;
    this.#settled = this.#rss();
    this.#timer = setInterval(() => this.check(), options.checkEveryMs ?? 10_000);
    this.#timer.unref();
  }

  /** Runs one check, as the timer does every `checkEveryMs`, and returns the release if one ran. */
  check(): MemoryRelease | undefined {
    if (this.#failed) return undefined;
    const utilization = this.#utilization();
    const rss = this.#rss();
    // Growth counts from the lowest reading since the last release. A release that frees nothing
    // leaves that reading at the memory in use, so it is not repeated.
    if (rss < this.#settled) this.#settled = rss;
    if (utilization >= this.#idleBelow || rss - this.#settled < this.#growthBytes) return undefined;
    let release: MemoryRelease;
    try {
      release = this.#release();
    } catch (error) {
      // A collector that failed once would fail on every check, so the checks stop.
      this.#failed = true;
      this.stop();
      this.#logger.warn(
        { err: error },
        'could not return freed memory to the system; memory stays as V8 keeps it until a restart',
      );

      return undefined;
    }
    this.#settled = release.rssAfter;
    this.#logger.info(
      {
        rssBeforeMiB: Math.round(release.rssBefore / 2 ** 20),
        rssAfterMiB: Math.round(release.rssAfter / 2 ** 20),
        pauseMs: Math.round(release.pauseMs),
      },
      'returned memory freed during a busy period to the system',
    );

    return release;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
