import { parseArgs } from 'node:util';

export const SCENARIOS = [
  'discovery',
  'token',
  'introspection',
  'signin',
  'contention',
  'memory',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** Every knob of a run, with its default; each has a flag and an environment variable. */
export const SETTINGS = {
  duration: { env: 'BENCH_DURATION', default: 5, about: 'seconds of each measured load run' },
  warmup: { env: 'BENCH_WARMUP', default: 2, about: 'seconds of warm-up per scenario and server' },
  runs: { env: 'BENCH_RUNS', default: 3, about: 'measured runs per scenario and server' },
  connections: {
    env: 'BENCH_CONNECTIONS',
    default: 16,
    about: 'keep-alive connections of the load generator',
  },
  codes: { env: 'BENCH_CODES', default: 2000, about: 'authorization codes exchanged per run' },
  signinDuration: {
    env: 'BENCH_SIGNIN_DURATION',
    default: 10,
    about: 'seconds of each sign-in run and of each contention probe',
  },
  signinConcurrency: {
    env: 'BENCH_SIGNIN_CONCURRENCY',
    default: 8,
    about: 'browsers signing in at once',
  },
  probeRate: {
    env: 'BENCH_PROBE_RATE',
    default: 50,
    about: 'token requests per second while measuring contention',
  },
  sessions: {
    env: 'BENCH_SESSIONS',
    default: 1000,
    about: 'sessions signed in for the memory figures',
  },
  accounts: { env: 'BENCH_ACCOUNTS', default: 3000, about: 'benchmark accounts created' },
} as const;

export type SettingName = keyof typeof SETTINGS;

export interface BenchOptions extends Record<SettingName, number> {
  scenarios: Scenario[];
  /** Report file; undefined with --no-write. */
  out?: string;
}

// A run of a few seconds that only checks that everything starts and responds.
const QUICK: Record<SettingName, number> = {
  duration: 0.5,
  warmup: 0.2,
  runs: 1,
  connections: 2,
  codes: 20,
  signinDuration: 1,
  signinConcurrency: 2,
  probeRate: 20,
  sessions: 10,
  accounts: 100,
};

const flagName = (name: string) => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

export function usage(): string {
  const lines = Object.entries(SETTINGS).map(
    ([name, s]) => `  --${flagName(name).padEnd(20)} ${s.env.padEnd(25)} ${s.about} (${s.default})`,
  );

  return [
    'usage: npm run bench -- [options]',
    '  flag                  environment               meaning (default)',
    ...lines,
    `  --scenarios LIST      BENCH_SCENARIOS           comma-separated subset of ${SCENARIOS.join(',')}`,
    '  --out FILE                                      report file (docs/benchmarks.md)',
    '  --no-write                                      print the figures only',
    '  --quick                                         tiny run that checks the bench works',
  ].join('\n');
}

/** Reads flags first, then BENCH_* variables, then the defaults; throws on a bad value. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions {
  const { values: parsed } = parseArgs({
    args: argv,
    options: {
      ...Object.fromEntries(
        Object.keys(SETTINGS).map((name) => [flagName(name), { type: 'string' as const }]),
      ),
      scenarios: { type: 'string' },
      out: { type: 'string' },
      'no-write': { type: 'boolean' },
      quick: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  const values = parsed as Record<string, string | boolean | undefined>;
  if (values['help']) throw new Error(usage());
  const problems: string[] = [];
  const numbers = {} as Record<SettingName, number>;
  for (const [name, setting] of Object.entries(SETTINGS) as [
    SettingName,
    (typeof SETTINGS)[SettingName],
  ][]) {
    const raw = (values[flagName(name)] as string | undefined) ?? env[setting.env];
    const fallback = values['quick'] ? QUICK[name] : setting.default;
    const value = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(value) || value <= 0) {
      problems.push(
        `--${flagName(name)} (${setting.env}) must be a positive number, but it is '${raw}'`,
      );
    }
    numbers[name] = value;
  }
  const listed = (
    (values['scenarios'] as string | undefined) ??
    env['BENCH_SCENARIOS'] ??
    SCENARIOS.join(',')
  )
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const name of listed) {
    if (!(SCENARIOS as readonly string[]).includes(name)) {
      problems.push(`--scenarios: '${name}' is not one of ${SCENARIOS.join(', ')}`);
    }
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));

  return {
    ...numbers,
    runs: Math.round(numbers.runs),
    scenarios: listed as Scenario[],
    out: values['no-write']
      ? undefined
      : ((values['out'] as string | undefined) ?? 'docs/benchmarks.md'),
  };
}
