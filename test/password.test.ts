import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  hashPassword,
  MAX_CONCURRENT_HASHES,
  runningHashes,
  verifyPassword,
} from '../src/accounts/password.ts';

describe('password hashing', () => {
  it('runs at most MAX_CONCURRENT_HASHES at once', async () => {
    const stored = await hashPassword('a long enough password');
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, runningHashes());
    }, 2);
    const results = await Promise.all(
      Array.from({ length: MAX_CONCURRENT_HASHES + 3 }, (_, i) =>
        verifyPassword(stored, i % 2 === 0 ? 'a long enough password' : 'wrong password'),
      ),
    );
    clearInterval(sampler);
    assert.ok(most >= 1, 'sampled while hashing');
    assert.ok(most <= MAX_CONCURRENT_HASHES, `${most} ran at once`);
    assert.equal(runningHashes(), 0);
    assert.deepEqual(
      results,
      results.map((_, i) => i % 2 === 0),
    );
  });

  it('frees the slot of a malformed hash', async () => {
    assert.equal(await verifyPassword('not a hash', 'x'), false);
    assert.equal(runningHashes(), 0);
  });
});
