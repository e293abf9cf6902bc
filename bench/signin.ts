import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { verify } from '@node-rs/argon2';
import { hashPassword } from '../src/accounts/password.ts';
import { TestBrowser } from '../test/support/browser.ts';
import {
  basicAuth,
  codeExchangeBody,
  freshChains,
  refreshBody,
  signedInBrowsers,
  signIn,
  tokenRequest,
  type TokenSet,
  type UserPool,
} from './flows.ts';
import { quantile, type RunFigures, runLoad } from './load.ts';
import type { BenchOptions } from './options.ts';
import { BENCH_PASSWORD, type BenchServers, type Target } from './servers.ts';

export interface HashFigures {
  /** Median time of one argon2id verification with idp's parameters, in ms, one at a time. */
  msPerHash: number;
  /**
   * CPU time of one verification, in ms, all threads together. @node-rs/argon2 computes the
   * 4 lanes on threads of their own, so one verification keeps more than one core busy.
   */
  cpuMsPerHash: number;
  cores: number;
  /** Sign-ins per second that hashing alone allows: cores / CPU time per hash. */
  bound: number;
  /** Verifications per second measured with every core hashing at once, as a sign-in load does. */
  parallelRate: number;
}

/** CPU time per sign-in, in ms, all runs together, split by where it was spent. */
export interface SignInCpu {
  /** The idp process, password hashing included. */
  idp: number;
  /** This process, which drives the browsers. */
  loadGenerator: number;
  /** Everything else on the machine: Redis, Postgres and the kernel's share of the network. */
  rest: number;
}

export interface SignInFigures {
  hash: HashFigures;
  cpu: SignInCpu;
  /** Sign-ins per second of each run. */
  rates: number[];
  /** Milliseconds from the authorization request to the tokens, all runs together. */
  p50: number;
  p99: number;
  failures: number;
}

/** Times argon2id verifications in this process, one after the other, while the servers idle. */
export async function measureHashing(samples = 10): Promise<HashFigures> {
  const stored = await hashPassword(BENCH_PASSWORD);
  await verify(stored, BENCH_PASSWORD);
  const times: number[] = [];
  const cpuBefore = process.cpuUsage();
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    await verify(stored, BENCH_PASSWORD);
    times.push(performance.now() - started);
  }
  const cpu = process.cpuUsage(cpuBefore);
  const cpuMsPerHash = (cpu.user + cpu.system) / 1000 / samples;
  times.sort((a, b) => a - b);
  const msPerHash = quantile(times, 0.5);
  const cores = availableParallelism();
  const started = performance.now();
  const lanes = Array.from({ length: cores * 2 }, async () => {
    for (let i = 0; i < Math.ceil(samples / 2); i++) await verify(stored, BENCH_PASSWORD);
  });
  await Promise.all(lanes);
  const parallelRate = (cores * 2 * Math.ceil(samples / 2) * 1000) / (performance.now() - started);

  return { msPerHash, cpuMsPerHash, cores, bound: (cores * 1000) / cpuMsPerHash, parallelRate };
}

/**
 * Keeps `concurrency` new browsers signing in (authorization request, forms, code exchange) until
 * `stop` says so or `count` sign-ins are done. Returns each sign-in's duration in ms.
 */
export async function signInLoad(
  target: Target,
  pick: () => string,
  concurrency: number,
  until: { seconds?: number; count?: number; stop?: () => boolean },
): Promise<{ durations: number[]; failures: number; seconds: number }> {
  const durations: number[] = [];
  let failures = 0;
  let started = 0;
  const begin = performance.now();
  const deadline = until.seconds === undefined ? Infinity : begin + until.seconds * 1000;
  const more = () =>
    performance.now() < deadline &&
    (until.count === undefined || started < until.count) &&
    !(until.stop?.() ?? false);
  const worker = async () => {
    while (more()) {
      started += 1;
      const t0 = performance.now();
      try {
        const browser = new TestBrowser(target.dispatcher);
        const code = await signIn(target, browser, pick());
        await tokenRequest(target, codeExchangeBody(code));
        durations.push(performance.now() - t0);
      } catch (error) {
        failures += 1;
        if (failures <= 3) console.error(`sign-in failed: ${(error as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));

  return { durations, failures, seconds: (performance.now() - begin) / 1000 };
}

/** Reads the CPU time all processes of the machine have used, in seconds (clock ticks of 10 ms). */
async function machineCpuSeconds(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0] ?? '';
  // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
  const [user, nice, system, , , irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);

  return (
    ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100
  );
}

/** Scenario 4: full interactive sign-ins on idp, set against the hashing bound. */
export async function signInScenario(
  servers: BenchServers,
  options: BenchOptions,
  pick: () => string,
  log: (line: string) => void,
): Promise<SignInFigures> {
  const hash = await measureHashing();
  log(
    `  argon2id: ${hash.msPerHash.toFixed(1)} ms per hash (${hash.cpuMsPerHash.toFixed(1)} ms of CPU), bound ${hash.bound.toFixed(1)} sign-ins/s on ${hash.cores} cores; ${hash.parallelRate.toFixed(1)} hashes/s with every core hashing`,
  );
  await signInLoad(servers.idp, pick, options.signinConcurrency, { seconds: options.warmup });
  const rates: number[] = [];
  const all: number[] = [];
  let failures = 0;
  const cpuBefore = {
    idp: await servers.idp.cpuSeconds(),
    self: process.cpuUsage(),
    machine: await machineCpuSeconds(),
  };
  for (let run = 0; run < options.runs; run++) {
    const result = await signInLoad(servers.idp, pick, options.signinConcurrency, {
      seconds: options.signinDuration,
    });
    rates.push(result.durations.length / result.seconds);
    all.push(...result.durations);
    failures += result.failures;
    log(
      `  sign-in run ${run + 1}: ${(result.durations.length / result.seconds).toFixed(1)} sign-ins/s${result.failures ? `, ${result.failures} failures` : ''}`,
    );
  }
  all.sort((a, b) => a - b);
  const idpSeconds = (await servers.idp.cpuSeconds()) - cpuBefore.idp;
  const self = process.cpuUsage(cpuBefore.self);
  const selfSeconds = (self.user + self.system) / 1e6;
  const machineSeconds = (await machineCpuSeconds()) - cpuBefore.machine;
  const perSignIn = (seconds: number) => (seconds * 1000) / Math.max(1, all.length);
  const cpu = {
    idp: perSignIn(idpSeconds),
    loadGenerator: perSignIn(selfSeconds),
    rest: perSignIn(Math.max(0, machineSeconds - idpSeconds - selfSeconds)),
  };
  log(
    `  CPU per sign-in: idp ${cpu.idp.toFixed(1)} ms, load generator ${cpu.loadGenerator.toFixed(1)} ms, the rest ${cpu.rest.toFixed(1)} ms`,
  );

  return { hash, cpu, rates, p50: quantile(all, 0.5), p99: quantile(all, 0.99), failures };
}

export interface ContentionFigures {
  atRest: RunFigures;
  underLoad: RunFigures;
  signInsPerSecond: number;
}

/**
 * Scenario 5: token requests at a steady rate, first alone and then while browsers sign in as
 * fast as they can. Password hashing must not hold up the event loop that serves the tokens.
 */
export async function contentionScenario(
  servers: BenchServers,
  options: BenchOptions,
  users: UserPool,
  log: (line: string) => void,
): Promise<ContentionFigures> {
  const target = servers.idp;
  const browsers = await signedInBrowsers(target, users.take(Math.min(4, options.connections)));
  const probe = async () => {
    const pool = await freshChains(target, browsers);

    return runLoad(
      target,
      {
        method: 'POST',
        path: '/token',
        headers: {
          authorization: basicAuth(target),
          'content-type': 'application/x-www-form-urlencoded',
        },
        setup: (req) => ({ ...req, body: refreshBody(pool.pop() ?? 'chain-lost') }),
        onResponse: (status, body) => {
          if (status === 200) pool.push((JSON.parse(body) as TokenSet).refresh_token!);
        },
      },
      { connections: browsers.length, duration: options.signinDuration, rate: options.probeRate },
    );
  };

  const atRest = await probe();
  log(`  token at rest: p50 ${atRest.p50.toFixed(2)} ms, p99 ${atRest.p99.toFixed(2)} ms`);
  let stop = false;
  const load = signInLoad(target, users.next, options.signinConcurrency, { stop: () => stop });
  await new Promise((resolve) => setTimeout(resolve, options.warmup * 1000));
  const underLoad = await probe();
  stop = true;
  const signIns = await load;
  const signInsPerSecond = signIns.durations.length / signIns.seconds;
  log(
    `  token under sign-in load: p50 ${underLoad.p50.toFixed(2)} ms, p99 ${underLoad.p99.toFixed(2)} ms (${signInsPerSecond.toFixed(1)} sign-ins/s)`,
  );

  return { atRest, underLoad, signInsPerSecond };
}
