// Child process of the benchmark: runs idp as `idp serve` does, with the environment that the
// parent prepared, and sends the parent its port over IPC.
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { startServer } from '../src/main.ts';
import { releaseFreedMemory } from '../src/server/idle-memory.ts';

const config = loadConfig(process.env);
const logger = createLogger(config.logLevel);
const server = await startServer(config, logger, {
  redisPrefix: process.env['BENCH_REDIS_PREFIX'],
});
process.send?.({ ready: true, port: server.port });
process.on('message', (message) => {
  if (message === 'memory') {
    // A full collection first, so that resident memory shows what is live rather than garbage.
    globalThis.gc?.();
    const memory = process.memoryUsage();
    // Then the resident memory of an idle idp, which has given back V8's pooled heap pages.
    const { rssAfter } = releaseFreedMemory();
    process.send?.({ memory: { ...memory, rssReleased: rssAfter } });
  }
  if (message === 'stop') void server.close().finally(() => process.exit(0));
});
process.on('disconnect', () => process.exit(0));
