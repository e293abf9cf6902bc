import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IdleMemoryRelease,
  type MemoryRelease,
  releaseFreedMemory,
} from '../src/server/idle-memory.ts';
import { captureLogs } from './support/idp.ts';

const MiB = 2 ** 20;

/**
 * Returns a release checker whose event-loop utilization and resident memory the test sets in
 * `state`. By default a release leaves `state.rssAfterRelease`.
 */
function checker(release?: () => MemoryRelease) {
  const state = { utilization: 0, rss: 150 * MiB, rssAfterRelease: 150 * MiB, releases: 0 };
  const { logger, logs } = captureLogs('info');
  const idle = new IdleMemoryRelease({
    logger,
    checkEveryMs: 3_600_000,
    utilization: () => state.utilization,
    rss: () => state.rss,
    release:
      release ??
      ((): MemoryRelease => {
        state.releases += 1;
        const result = { rssBefore: state.rss, rssAfter: state.rssAfterRelease, pauseMs: 41.6 };
        state.rss = state.rssAfterRelease;

        return result;
      }),
  });

  return { idle, state, logs };
}

/**
 * Fills about 100 MiB of ordinary heap pages with small objects, which are garbage once it returns.
 * An ordinary collection keeps such pages committed for reuse.
 */
function makeGarbage(): number {
  const chunks: number[][][] = [];
  for (let i = 0; i < 2000; i++) chunks.push(Array.from({ length: 1000 }, (_, j) => [j]));

  return chunks.length;
}

describe('idle memory release', () => {
  it('releases after a busy period', () => {
    const { idle, state, logs } = checker();
    state.utilization = 0.9;
    state.rss = 300 * MiB;
    assert.equal(idle.check(), undefined, 'no release while the event loop is busy');
    assert.equal(state.releases, 0);

    state.utilization = 0.01;
    state.rssAfterRelease = 160 * MiB;
    assert.deepEqual(idle.check(), { rssBefore: 300 * MiB, rssAfter: 160 * MiB, pauseMs: 41.6 });
    assert.equal(state.releases, 1);
    assert.deepEqual(
      logs.map(({ msg, rssBeforeMiB, rssAfterMiB, pauseMs }) => ({
        msg,
        rssBeforeMiB,
        rssAfterMiB,
        pauseMs,
      })),
      [
        {
          msg: 'returned memory freed during a busy period to the system',
          rssBeforeMiB: 300,
          rssAfterMiB: 160,
          pauseMs: 42,
        },
      ],
    );

    assert.equal(idle.check(), undefined, 'an idle node that stays idle releases once');
    assert.equal(state.releases, 1);
    idle.stop();
  });

  it('ignores growth below the threshold', () => {
    const { idle, state } = checker();
    state.rss += 31 * MiB;
    assert.equal(idle.check(), undefined);
    state.rss += 1 * MiB;
    assert.notEqual(idle.check(), undefined, '32 MiB of growth is enough');
    idle.stop();
  });

  it('keeps memory a release cannot shrink', () => {
    const { idle, state } = checker();
    state.rss = 250 * MiB;
    state.rssAfterRelease = 249 * MiB;
    assert.notEqual(idle.check(), undefined);
    assert.equal(idle.check(), undefined, 'memory in use is the new reference');
    state.rss = 270 * MiB;
    assert.equal(idle.check(), undefined);
    state.rss = 282 * MiB;
    assert.notEqual(idle.check(), undefined, 'new growth past the threshold releases again');
    assert.equal(state.releases, 2);
    idle.stop();
  });

  it('measures growth from the lowest reading', () => {
    const { idle, state } = checker();
    state.rss = 120 * MiB;
    assert.equal(idle.check(), undefined);
    state.rss = 155 * MiB;
    assert.notEqual(idle.check(), undefined);
    idle.stop();
  });

  it('stops after a failed release', () => {
    let attempts = 0;
    const { idle, state, logs } = checker(() => {
      attempts += 1;
      throw new TypeError('gc is not a function');
    });
    state.rss = 400 * MiB;
    assert.equal(idle.check(), undefined);
    assert.equal(attempts, 1);
    assert.equal(idle.check(), undefined);
    assert.equal(attempts, 1, 'no second attempt');
    assert.deepEqual(
      logs.map(({ level, msg }) => ({ level, msg })),
      [
        {
          level: 40,
          msg: 'could not return freed memory to the system; memory stays as V8 keeps it until a restart',
        },
      ],
    );
  });

  it('unmaps pages an ordinary collection keeps', () => {
    assert.equal(makeGarbage(), 2000);
    const release = releaseFreedMemory();
    assert.ok(release.pauseMs >= 0);
    assert.ok(
      release.rssBefore - release.rssAfter > 64 * MiB,
      `resident memory went from ${release.rssBefore / MiB} to ${release.rssAfter / MiB} MiB`,
    );
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'gc stays hidden');
  });
});
