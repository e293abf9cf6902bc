import autocannon from 'autocannon';
import type { Target } from './servers.ts';

/** Figures of one load run. Latencies are in milliseconds, over 2xx responses. */
export interface RunFigures {
  rps: number;
  p50: number;
  p99: number;
  /** Responses other than 2xx, plus connection errors and timeouts. */
  failures: number;
  /** Server CPU time per successful response, in microseconds. */
  cpuMicros: number;
  /** Successful responses' latencies, sorted, the seconds the run took, and the server CPU seconds. */
  latencies: number[];
  seconds: number;
  cpu: number;
}

/** One request of a load run; `setup` may change it just before it is sent. */
export interface LoadRequest {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Called before each send; the context lives for one request and its response. */
  setup?: (request: LoadRequest, context: Record<string, unknown>) => LoadRequest;
  onResponse?: (status: number, body: string, context: Record<string, unknown>) => void;
  /** Tells whether a 2xx body is a success; every 2xx is one without it. */
  accept?: (body: string) => boolean;
}

export interface LoadOptions {
  connections: number;
  /** Seconds; ignored when `amount` is given. */
  duration?: number;
  /** Number of requests to send in all. */
  amount?: number;
  /** Requests per second over all connections; unlimited when missing. */
  rate?: number;
}

/** Returns the q-quantile (0..1) of sorted values by the nearest-rank method. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));

  return sorted[rank] as number;
}

/**
 * Drives a target with autocannon over keep-alive TLS connections. Latencies are taken from each
 * response with full precision rather than from autocannon's whole-millisecond histogram.
 */
export async function runLoad(
  target: Target,
  request: LoadRequest,
  options: LoadOptions,
): Promise<RunFigures> {
  const latencies: number[] = [];
  let failures = 0;
  // autocannon calls onResponse and then emits 'response' for the same response.
  let rejected = false;
  const cpuBefore = await target.cpuSeconds();
  let finish: (error: Error | null, result: autocannon.Result) => void = () => {};
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finish = (error, result) => (error ? reject(error) : resolve(result));
  });
  const settings: autocannon.Options = {
    url: `https://127.0.0.1:${target.port}`,
    connections: options.connections,
    pipelining: 1,
    ...(options.amount ? { amount: options.amount } : { duration: options.duration ?? 5 }),
    ...(options.rate ? { overallRate: options.rate } : {}),
    timeout: 30,
    requests: [
      {
        method: request.method,
        path: request.path,
        headers: { ...request.headers, host: `localhost:${target.port}` },
        body: request.body,
        ...(request.setup
          ? {
              setupRequest: (built: autocannon.Request, context: object) => {
                const next = request.setup!(
                  { ...request, path: built.path ?? request.path },
                  context as Record<string, unknown>,
                );

                return {
                  ...built,
                  path: next.path,
                  headers: { ...next.headers, host: `localhost:${target.port}` },
                  body: next.body,
                };
              },
            }
          : {}),
        ...(request.onResponse || request.accept
          ? {
              onResponse: (status: number, body: string, context: object) => {
                rejected = request.accept !== undefined && !request.accept(body);
                request.onResponse?.(status, body, context as Record<string, unknown>);
              },
            }
          : {}),
      },
    ],
  };
  const started = performance.now();
  let lastResponse = started;
  const instance = autocannon(settings, (error, result) => finish(error, result));
  instance.on('response', (_client, status, _bytes, responseTime) => {
    lastResponse = performance.now();
    if (status >= 200 && status < 300 && !rejected) latencies.push(responseTime);
    else failures += 1;
    rejected = false;
  });
  const result = await done;
  // autocannon ends a run on its one-second tick and reports whole seconds, too coarse for runs
  // of a given number of requests, so a run lasts until its last response.
  const seconds = Math.max(0.001, (lastResponse - started) / 1000);
  const cpu = (await target.cpuSeconds()) - cpuBefore;
  failures += result.errors + result.timeouts;
  latencies.sort((a, b) => a - b);

  return figuresOf(latencies, seconds, failures, cpu);
}

function figuresOf(
  sortedLatencies: number[],
  seconds: number,
  failures: number,
  cpu: number,
): RunFigures {
  return {
    rps: sortedLatencies.length / seconds,
    p50: quantile(sortedLatencies, 0.5),
    p99: quantile(sortedLatencies, 0.99),
    failures,
    cpuMicros: (cpu * 1e6) / Math.max(1, sortedLatencies.length),
    latencies: sortedLatencies,
    seconds,
    cpu,
  };
}

/** Combines back-to-back load runs into one: total successes over total time. */
export function mergeFigures(parts: RunFigures[]): RunFigures {
  const latencies = parts.flatMap((part) => part.latencies).sort((a, b) => a - b);
  const seconds = parts.reduce((sum, part) => sum + part.seconds, 0);
  const failures = parts.reduce((sum, part) => sum + part.failures, 0);
  const cpu = parts.reduce((sum, part) => sum + part.cpu, 0);

  return figuresOf(latencies, seconds, failures, cpu);
}
