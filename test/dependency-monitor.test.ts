import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../src/logger.ts';
import { DependencyMonitor } from '../src/server/outages.ts';

/** Returns a monitor and the messages it logs. */
function monitorWithLog() {
  const messages: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      messages.push(String((JSON.parse(chunk.toString()) as { msg: string }).msg));
      done();
    },
  });

  return { monitor: new DependencyMonitor(createLogger('info', sink)), messages };
}

describe('dependency monitor', () => {
  it('logs each change of state once', () => {
    const { monitor, messages } = monitorWithLog();
    monitor.markDown('redis', new Error('connect ECONNREFUSED'));
    monitor.markDown('redis', new Error('connect ECONNREFUSED'));
    assert.equal(monitor.isUp('redis'), false);
    monitor.markUp('redis');
    monitor.markUp('redis');
    assert.equal(monitor.isUp('redis'), true);
    assert.deepEqual(messages, [
      'Redis is unavailable: requests that need it get 503 until it is reachable again',
      'Redis is available again',
    ]);
  });

  it('ignores a failure that began before the last success', () => {
    const { monitor, messages } = monitorWithLog();
    monitor.markDown('redis', new Error('connection closed'));
    const startedAt = performance.now();
    monitor.markUp('redis');
    // A command sent before the reconnection, failing after it.
    monitor.markDown('redis', new Error('Connection is closed.'), startedAt);
    assert.equal(monitor.isUp('redis'), true);
    assert.equal(messages.length, 2);

    monitor.markDown('redis', new Error('Connection is closed.'), performance.now() + 1);
    assert.equal(monitor.isUp('redis'), false, 'a failure that began later counts');
  });
});
