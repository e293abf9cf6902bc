import type { TestBrowser } from '../test/support/browser.ts';
import {
  basicAuth,
  codeExchangeBody,
  freshChains,
  nextCode,
  refreshBody,
  signedInBrowsers,
  tokenRequest,
  type TokenSet,
  type UserPool,
} from './flows.ts';
import { type LoadRequest, mergeFigures, type RunFigures, runLoad } from './load.ts';
import type { BenchOptions } from './options.ts';
import type { BenchServers, Target } from './servers.ts';

/** Runs of one request type on both servers, for the table. */
export interface Comparison {
  scenario: string;
  label: string;
  idp: RunFigures[];
  baseline: RunFigures[];
}

/**
 * Something to measure: `prepare` runs before every run (outside the timing) and returns the
 * request and, for requests that use up what they send, how many of them to send. A run of
 * `batches` is that many prepared load runs back to back, measured together.
 */
interface Workload {
  prepare(target: Target, run: number): Promise<{ request: LoadRequest; amount?: number }>;
  batches?: number;
}

const FORM = 'application/x-www-form-urlencoded';
const CODE_BATCH = 250;

/**
 * Warms each server up, then alternates measured runs between idp and the baseline, so that a
 * slow spell of the machine falls on both.
 */
async function compare(
  servers: BenchServers,
  options: BenchOptions,
  scenario: string,
  label: string,
  workloads: Record<Target['name'], Workload>,
  log: (line: string) => void,
): Promise<Comparison> {
  const result: Comparison = { scenario, label, idp: [], baseline: [] };
  const targets = [servers.idp, servers.baseline];
  for (const target of targets) {
    const { request, amount } = await workloads[target.name].prepare(target, -1);
    await runLoad(target, request, {
      connections: options.connections,
      ...(amount ? { amount: Math.ceil(amount / 2) } : { duration: options.warmup }),
    });
  }
  for (let run = 0; run < options.runs; run++) {
    for (const target of targets) {
      const workload = workloads[target.name];
      const parts: RunFigures[] = [];
      for (let batch = 0; batch < (workload.batches ?? 1); batch++) {
        const { request, amount } = await workload.prepare(target, run);
        parts.push(
          await runLoad(target, request, {
            connections: options.connections,
            ...(amount ? { amount } : { duration: options.duration }),
          }),
        );
      }
      const figures = mergeFigures(parts);
      result[target.name].push(figures);
      log(
        `  ${label.padEnd(28)} ${target.name.padEnd(8)} run ${run + 1}: ${figures.rps.toFixed(0)} req/s, p50 ${figures.p50.toFixed(2)} ms, p99 ${figures.p99.toFixed(2)} ms, ${figures.cpuMicros.toFixed(0)} µs CPU/req${figures.failures ? `, ${figures.failures} failures` : ''}`,
      );
    }
  }

  return result;
}

const both = (workload: Workload): Record<Target['name'], Workload> => ({
  idp: workload,
  baseline: workload,
});

const fixed = (request: (target: Target) => LoadRequest): Workload => ({
  prepare: (target) => Promise.resolve({ request: request(target) }),
});

/** Scenario 1: discovery document and JWKS, the requests every relying app starts with. */
export async function discoveryScenario(
  servers: BenchServers,
  options: BenchOptions,
  log: (line: string) => void,
) {
  return [
    await compare(
      servers,
      options,
      'discovery',
      'discovery document',
      both(fixed(() => ({ method: 'GET', path: '/.well-known/openid-configuration' }))),
      log,
    ),
    await compare(
      servers,
      options,
      'discovery',
      'JWKS',
      both(fixed(() => ({ method: 'GET', path: '/jwks' }))),
      log,
    ),
  ];
}

/** Mints fresh codes from signed-in browsers; a code lives 60 s, so this runs right before use. */
async function mintCodes(
  target: Target,
  browsers: TestBrowser[],
  count: number,
): Promise<string[]> {
  const codes: string[] = [];
  await Promise.all(
    browsers.map(async (browser) => {
      while (codes.length < count) codes.push(await nextCode(target, browser));
    }),
  );

  return codes.slice(0, count);
}

function tokenPost(target: Target, body: string): LoadRequest {
  return {
    method: 'POST',
    path: '/token',
    headers: { authorization: basicAuth(target), 'content-type': FORM },
    body,
  };
}

/**
 * Scenario 2: the token endpoint. Code exchange uses up a fresh code per request. The refresh
 * grant rotates: each connection takes the newest token of its own chain and puts the next one
 * back, so no token is sent twice.
 */
export async function tokenScenario(
  servers: BenchServers,
  options: BenchOptions,
  users: UserPool,
  log: (line: string) => void,
): Promise<Comparison[]> {
  const minters = users.take(Math.min(8, options.connections));
  const chainUsers = users.take(options.connections);
  const browsers = new Map<Target, TestBrowser[]>();
  // The baseline's in-memory adapter keeps its latest 1,000 records only, so codes are minted
  // and exchanged in batches that fit.
  const batch = Math.min(CODE_BATCH, options.codes);
  const codeExchange: Workload = {
    batches: Math.max(1, Math.round(options.codes / batch)),
    async prepare(target) {
      if (!browsers.has(target)) browsers.set(target, await signedInBrowsers(target, minters));
      const codes = await mintCodes(target, browsers.get(target)!, batch);
      const request = tokenPost(target, '');
      request.setup = (req) => ({ ...req, body: codeExchangeBody(codes.pop() ?? 'used-up') });

      return { request, amount: batch };
    },
  };

  // One signed-in browser per chain; each run starts every chain afresh from a new code, as a run
  // that stops mid-flight loses the token of each request still in the air.
  const chainBrowsers = new Map<Target, TestBrowser[]>();
  const refresh: Workload = {
    async prepare(target) {
      if (!chainBrowsers.has(target)) {
        chainBrowsers.set(target, await signedInBrowsers(target, chainUsers));
      }
      const pool = await freshChains(target, chainBrowsers.get(target)!);
      const request = tokenPost(target, '');
      // Last in, first out: a connection takes back the token its own last response put there.
      request.setup = (req) => ({ ...req, body: refreshBody(pool.pop() ?? 'chain-lost') });
      request.onResponse = (status, body) => {
        if (status === 200) pool.push((JSON.parse(body) as TokenSet).refresh_token!);
      };

      return { request };
    },
  };

  return [
    await compare(servers, options, 'token', 'token: code exchange', both(codeExchange), log),
    await compare(servers, options, 'token', 'token: refresh (rotating)', both(refresh), log),
  ];
}

/** Scenario 3: a resource server checking access tokens, and an app reading the user's claims. */
export async function introspectionScenario(
  servers: BenchServers,
  options: BenchOptions,
  users: UserPool,
  log: (line: string) => void,
): Promise<Comparison[]> {
  const holders = users.take(Math.min(8, options.connections));
  const tokens = new Map<Target, string[]>();
  const accessTokens = async (target: Target) => {
    if (!tokens.has(target)) {
      const browsers = await signedInBrowsers(target, holders);
      const sets = await Promise.all(
        browsers.map(async (browser) =>
          tokenRequest(target, codeExchangeBody(await nextCode(target, browser))),
        ),
      );
      tokens.set(
        target,
        sets.map((set) => set.access_token),
      );
    }

    return tokens.get(target)!;
  };
  let turn = 0;
  const introspection: Workload = {
    async prepare(target) {
      const pool = await accessTokens(target);
      const request: LoadRequest = {
        ...tokenPost(target, ''),
        path: '/token/introspection',
        setup: (req) => ({ ...req, body: `token=${pool[turn++ % pool.length]}` }),
        // An inactive answer is a 200 too, but it means the check failed.
        accept: (body) => body.includes('"active":true'),
      };

      return { request };
    },
  };
  const userinfo: Workload = {
    async prepare(target) {
      const pool = await accessTokens(target);
      const request: LoadRequest = {
        method: 'GET',
        path: '/me',
        setup: (req) => ({
          ...req,
          headers: { authorization: `Bearer ${pool[turn++ % pool.length]}` },
        }),
      };

      return { request };
    },
  };

  return [
    await compare(servers, options, 'introspection', 'introspection', both(introspection), log),
    await compare(servers, options, 'introspection', 'userinfo', both(userinfo), log),
  ];
}
