import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { renderReport, signInCeiling } from '../bench/report.ts';
import type { SignInFigures } from '../bench/signin.ts';

const root = path.join(import.meta.dirname, '..');

describe('benchmark script', () => {
  it('starts both servers, signs in, and prints a report without writing it', () => {
    const run = spawnSync(
      process.execPath,
      ['bench/run.ts', '--quick', '--no-write', '--scenarios', 'discovery,token'],
      { cwd: root, encoding: 'utf8', timeout: 90_000 },
    );
    assert.equal(run.status, 0, `bench exited with ${run.status}: ${run.stderr}${run.stdout}`);
    assert.match(run.stdout, /\| discovery document \| [\d,]+ \| [\d,]+ \| \*\*[\d.]+\*\*/);
    assert.match(run.stdout, /\| token: refresh \(rotating\) \|/);
    assert.doesNotMatch(run.stdout, /written to/);
  });

  it('rejects an unknown option with the usage', () => {
    const run = spawnSync(process.execPath, ['bench/run.ts', '--runs=-1', '--scenarios', 'x'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /--runs \(BENCH_RUNS\) must be a positive number, but it is '-1'/);
    assert.match(run.stderr, /--scenarios: 'x' is not one of/);
  });
});

describe('sign-in report', () => {
  // 2 cores that manage 20 verifications per second together: 100 ms of CPU per verification.
  const figures: SignInFigures = {
    hash: { msPerHash: 30, cpuMsPerHash: 60, cores: 2, bound: 2000 / 60, parallelRate: 20 },
    cpu: { idp: 140, loadGenerator: 12, rest: 8 },
    rates: [11, 12, 13],
    p50: 500,
    p99: 700,
    failures: 0,
  };

  it('ceiling counts one verification per sign-in', () => {
    // 2,000 ms of CPU per second over 100 + 12 + 8 ms per sign-in.
    assert.equal(signInCeiling(figures).toFixed(2), '16.67');
  });

  it('goal row gives the ceiling', () => {
    const report = renderReport({
      command: 'npm run bench',
      startedAt: new Date('2026-12-05T04:00:00Z'),
      seconds: 30,
      loadAverage: 0,
      comparisons: [],
      signIn: figures,
      idpErrors: 0,
    });
    // 12 of 33.3 sign-ins/s is 0.36 of the bound, and 16.67 of 33.3 is 0.50.
    assert.match(
      report,
      /\| sign-ins\/s against the hashing bound \| ≥ 0\.8 \| 0\.36 \(this machine allows at most 0\.50\) \| \*\*missed\*\* \|/,
    );
    assert.match(report, /\| 16\.67\/s, \*\*0\.50\*\* of the bound \|/);
  });
});
