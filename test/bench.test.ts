import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';

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
