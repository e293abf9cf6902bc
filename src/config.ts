import { accessSync, constants, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { parseRedisUrl } from './db/redis.ts';

/** Parses a duration such as `90s`, `15m`, `8h` or `7d` into seconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)\s*(s|m|h|d)$/.exec(text.trim());
  if (!match) return undefined;
  const units = { s: 1, m: 60, h: 3600, d: 86400 } as const;

  return Number(match[1]) * units[match[2] as keyof typeof units];
}

const MAX_DURATION_SECONDS = 24 * 24 * 60 * 60;

const duration = z.string().transform((text, ctx) => {
  const seconds = parseDuration(text);
  if (seconds === undefined || seconds === 0) {
    ctx.addIssue({
      code: 'custom',
      message: `must be a duration such as 90s, 15m, 8h or 7d, but it is '${text}'`,
    });

    return z.NEVER;
  }
  // Node's timers overflow past 2^31 - 1 ms, about 24.8 days, and fire at once.
  if (seconds > MAX_DURATION_SECONDS) {
    ctx.addIssue({ code: 'custom', message: `must be at most 24d, but it is '${text}'` });

    return z.NEVER;
  }

  return seconds;
});

const port = z.coerce
  .number({ error: 'must be a port number' })
  .int({ error: 'must be a whole port number' })
  .min(1, { error: 'must be a port number from 1 to 65535' })
  .max(65535, { error: 'must be a port number from 1 to 65535' });

const count = (least: number) =>
  z.coerce
    .number({ error: 'must be a whole number' })
    .int({ error: 'must be a whole number' })
    .min(least, { error: `must be a whole number of at least ${least}` });

const trustProxy = z.string().transform((text, ctx) => {
  const value = text.trim().toLowerCase();
  if (value === 'false' || value === '') return false as const;
  if (value === 'true') return true as const;
  const entries = value.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    const [address, prefix] = entry.split('/');
    const family = isIP(address ?? '');
    const maxPrefix = family === 6 ? 128 : 32;
    const prefixOk = prefix === undefined || (/^\d+$/.test(prefix) && Number(prefix) <= maxPrefix);
    if (family === 0 || !prefixOk) {
      ctx.addIssue({
        code: 'custom',
        message: `must be false, true, or a comma-separated list of IP addresses or CIDR ranges, but '${entry}' is not one`,
      });

      return z.NEVER;
    }
  }

  return entries;
});

const encryptionKeys = z.string().transform((text, ctx) => {
  const keys = text.split(',').map((entry) => Buffer.from(entry.trim(), 'base64'));
  if (keys.some((key) => key.length !== 32)) {
    ctx.addIssue({
      code: 'custom',
      message:
        'must be a 32-byte key in base64 (create one with: openssl rand -base64 32), or several separated by commas, newest first',
    });

    return z.NEVER;
  }

  return keys;
});

const cookieKeys = z.string().transform((text, ctx) => {
  const keys = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (keys.length === 0 || keys.some((key) => key.length < 32)) {
    ctx.addIssue({
      code: 'custom',
      message:
        'must be one or more keys of at least 32 characters separated by commas, newest first (create one with: openssl rand -base64 32)',
    });

    return z.NEVER;
  }

  return keys;
});

/** Image types a logo may have, by file extension, with the type idp serves it as. */
export const LOGO_TYPES: Record<string, string> = {
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
};

const logoFile = z.string().superRefine((file, ctx) => {
  if (!(path.extname(file).toLowerCase() in LOGO_TYPES)) {
    ctx.addIssue({
      code: 'custom',
      message: `must name an .svg, .png, .jpg or .webp file, but it is '${file}'`,
    });

    return;
  }
  try {
    accessSync(file, constants.R_OK);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    ctx.addIssue({
      code: 'custom',
      message: `must name a readable image file, but it is '${file}', which cannot be read (${reason})`,
    });
  }
});

const connectionUrl = (schemes: string[], example: string) =>
  z.string().refine(
    (text) => {
      try {
        return schemes.includes(new URL(text).protocol);
      } catch {
        return false;
      }
    },
    { error: `must be a connection URL such as ${example}` },
  );

const redisUrl = z.string().superRefine((text, ctx) => {
  try {
    parseRedisUrl(text);
  } catch (error) {
    ctx.addIssue({
      code: 'custom',
      message: `${(error as Error).message} (examples: redis://host:6379/0, redis+sentinel://sentinel1:26379,sentinel2:26379/mymaster, redis+cluster://node1:6379,node2:6379)`,
    });
  }
});

/**
 * The environment variables idp reads, each with its meaning and default. The docs page of the
 * configuration is generated from these descriptions.
 */
export const configSchema = z.object({
  IDP_ISSUER: z
    .url({
      protocol: /^https?$/,
      error: 'must be an absolute https URL such as https://id.example.org',
    })
    .default('https://localhost:8443')
    .describe('Public https URL of the provider, as relying apps and browsers reach it.'),
  IDP_PORT: port.default(8443).describe('TCP port the server listens on.'),
  IDP_HOST: z.string().min(1).default('0.0.0.0').describe('Address the server listens on.'),
  IDP_TLS_CERT_FILE: z
    .string()
    .optional()
    .describe('Path of the PEM certificate chain, server certificate first. Reloaded on SIGHUP.'),
  IDP_TLS_KEY_FILE: z
    .string()
    .optional()
    .describe('Path of the PEM private key of the certificate.'),
  IDP_TRUST_PROXY: trustProxy
    .default(false)
    .describe(
      'false: idp terminates TLS itself. true: TLS ends at the one proxy directly in front, whose X-Forwarded-* headers are trusted. Or a comma-separated list of proxy addresses or CIDR ranges whose headers are trusted.',
    ),
  DATABASE_URL: connectionUrl(['postgres:', 'postgresql:'], 'postgres://user@host:5432/idp')
    .optional()
    .describe('Postgres connection string. Unset: an embedded PGlite database in IDP_DATA_DIR.'),
  REDIS_URL: redisUrl
    .optional()
    .describe(
      'Redis connection string: redis:// or rediss:// for one server, redis+sentinel://HOST:PORT,.../MASTER for Sentinel, redis+cluster://HOST:PORT,... for Cluster. Unset: sessions kept in process, for one node only.',
    ),
  IDP_REDIS_PREFIX: z
    .string()
    .regex(/^[\w.:{}-]{1,64}$/, {
      error: "must be 1 to 64 letters, digits or the characters . _ - : { }, such as 'idp:'",
    })
    .default('idp:')
    .describe(
      'Prefix of every Redis key and channel idp uses, so several deployments can share one Redis. In Cluster mode it becomes a hash tag such as {idp}: so that all keys share one slot.',
    ),
  IDP_DATA_DIR: z
    .string()
    .min(1)
    .default('./data')
    .describe(
      'Folder of the embedded database, generated secrets and the self-signed certificate.',
    ),
  IDP_COOKIE_KEYS: cookieKeys
    .optional()
    .describe(
      'Comma-separated keys that sign cookies, newest first. Generated in embedded mode, required otherwise.',
    ),
  IDP_ENCRYPTION_KEY: encryptionKeys
    .optional()
    .describe(
      '32-byte key in base64 that encrypts TOTP secrets, client secrets and signing keys at rest; several separated by commas, newest first, while rotating. Generated in embedded mode, required otherwise.',
    ),
  IDP_PRODUCT_NAME: z
    .string()
    .trim()
    .min(1)
    .max(60, { error: 'must be at most 60 characters' })
    .optional()
    .describe(
      'Name of the service shown at the top of every page and in page titles, such as "Riverside Health sign-in". Default: idp.',
    ),
  IDP_LOGO_FILE: logoFile
    .optional()
    .describe(
      'Path of a logo image (.svg, .png, .jpg or .webp) shown instead of the product name at the top of every page, with the product name as its text alternative. Read once at start-up.',
    ),
  IDP_TOTP_ISSUER: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Label that authenticator apps show beside the account. Default: IDP_PRODUCT_NAME when set, else the host of IDP_ISSUER.',
    ),
  IDP_SESSION_IDLE: duration
    .prefault('15m')
    .describe(
      'Idle session lifetime: a session not used for this long ends, and the next sign-in asks for the password again. A duration such as 90s, 15m, 8h or 7d.',
    ),
  IDP_SESSION_MAX: duration
    .prefault('8h')
    .describe(
      'Absolute session lifetime: a session ends this long after sign-in however much it is used. A duration such as 8h.',
    ),
  IDP_LOCKOUT_THRESHOLD: count(2)
    .default(10)
    .describe(
      'Failed passwords or codes of one account within 15 minutes that lock it; from half as many, each attempt waits a doubling delay (1 s, 2 s, ... up to 16 s). An address with no recent failures still gets one attempt every 15 s on a locked account, so an attacker cannot keep its owner out.',
    ),
  IDP_LOCKOUT_DURATION: duration
    .prefault('15m')
    .describe(
      'How long a lock lasts. It always ends by itself, and attempts during it do not make it longer; `idp users unlock` ends it at once.',
    ),
  IDP_ADDRESS_FAILURE_LIMIT: count(1)
    .default(50)
    .describe(
      'Failed passwords or codes from one client address within 15 minutes after which that address is rejected for 15 minutes. Attempts count from the moment they start, so as many sign-ins in progress at once count too; raise it for many users behind one address.',
    ),
  IDP_METRICS_PORT: port
    .optional()
    .describe(
      'Serve /metrics over plain HTTP on this port of IDP_HOST instead of the main port, so that it need not be public.',
    ),
  IDP_KEY_ACTIVATION_DELAY: duration
    .prefault('24h')
    .describe(
      'How long a key made by `idp keys rotate` is published before it starts signing; longer than the JWKS cache of every relying app.',
    ),
  IDP_SHUTDOWN_TIMEOUT: duration
    .prefault('10s')
    .describe(
      'On SIGTERM, how long in-flight requests may take before the remaining connections are cut.',
    ),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      error: 'must be one of fatal, error, warn, info, debug, trace, silent',
    })
    .default('info')
    .describe('Log level of the JSON logs on standard output.'),
});

/** Variables whose values never appear in error messages, since they may hold credentials. */
export const SECRET_VARIABLES = new Set([
  'DATABASE_URL',
  'REDIS_URL',
  'IDP_COOKIE_KEYS',
  'IDP_ENCRYPTION_KEY',
]);

export type ConfigVariable = keyof typeof configSchema.shape;
type ParsedEnvironment = z.output<typeof configSchema>;

export interface Config {
  issuer: URL;
  port: number;
  host: string;
  tls?: { certFile: string; keyFile: string };
  trustProxy: false | true | string[];
  databaseUrl?: string;
  redisUrl?: string;
  redisPrefix: string;
  dataDir: string;
  /** True when no DATABASE_URL is set: PGlite, generated secrets, a self-signed certificate. */
  embedded: boolean;
  cookieKeys?: string[];
  encryptionKeys?: Buffer[];
  /** The operator's product name and logo file, shown on every page. */
  branding: { productName: string; logoFile?: string };
  totpIssuer: string;
  sessionIdleSeconds: number;
  sessionMaxSeconds: number;
  lockout: { threshold: number; durationSeconds: number; addressLimit: number };
  metricsPort?: number;
  keyActivationDelaySeconds: number;
  shutdownTimeoutSeconds: number;
  logLevel: ParsedEnvironment['LOG_LEVEL'];
}

export class ConfigError extends Error {
  readonly problems: string[];

  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Replaces each `X_FILE` variable by `X` read from that file, collecting read problems. */
function resolveFileVariables(env: NodeJS.ProcessEnv, problems: string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const name of Object.keys(configSchema.shape)) {
    const direct = env[name];
    const filePath = env[`${name}_FILE`];
    if (direct !== undefined && direct !== '' && filePath !== undefined && filePath !== '') {
      problems.push(`${name} and ${name}_FILE are both set; set only one of them`);
      continue;
    }
    if (filePath !== undefined && filePath !== '') {
      try {
        values[name] = readFileSync(filePath, 'utf8').replace(/\r?\n$/, '');
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
        problems.push(`${name}_FILE names '${filePath}', which cannot be read (${reason})`);
      }
    } else if (direct !== undefined && direct !== '') {
      values[name] = direct;
    }
  }

  return values;
}

function checkCombinations(
  parsed: ParsedEnvironment,
  purpose: ConfigPurpose,
  problems: string[],
): void {
  const embedded = parsed.DATABASE_URL === undefined;
  const hasCert = parsed.IDP_TLS_CERT_FILE !== undefined;
  const hasKey = parsed.IDP_TLS_KEY_FILE !== undefined;
  if (hasCert !== hasKey) {
    problems.push('IDP_TLS_CERT_FILE and IDP_TLS_KEY_FILE must be set together');
  }
  if (parsed.IDP_METRICS_PORT !== undefined && parsed.IDP_METRICS_PORT === parsed.IDP_PORT) {
    problems.push(
      'IDP_METRICS_PORT must differ from IDP_PORT; leave it unset to serve /metrics on IDP_PORT',
    );
  }
  const issuer = new URL(parsed.IDP_ISSUER);
  if (issuer.username || issuer.password) {
    problems.push('IDP_ISSUER must not contain a user name or password');
  } else if (issuer.pathname.replace(/\/+$/, '') !== '' || issuer.search || issuer.hash) {
    // Discovery and every endpoint are served at the root, so relying apps could not find them.
    problems.push(
      `IDP_ISSUER must be the scheme, host and port only, such as https://id.example.org, but it is '${parsed.IDP_ISSUER}'`,
    );
  }
  if (parsed.IDP_SESSION_IDLE > parsed.IDP_SESSION_MAX) {
    problems.push('IDP_SESSION_IDLE must not be longer than IDP_SESSION_MAX');
  }
  if (embedded) return;

  if (parsed.IDP_ENCRYPTION_KEY === undefined) {
    problems.push(
      'IDP_ENCRYPTION_KEY is required when DATABASE_URL is set (openssl rand -base64 32)',
    );
  }
  // Commands other than serve neither listen nor set cookies.
  if (purpose !== 'serve') return;
  if (new URL(parsed.IDP_ISSUER).protocol !== 'https:') {
    problems.push(
      `IDP_ISSUER must be an https URL outside embedded mode, but it is '${parsed.IDP_ISSUER}'`,
    );
  }
  if (parsed.IDP_COOKIE_KEYS === undefined) {
    problems.push('IDP_COOKIE_KEYS is required when DATABASE_URL is set (openssl rand -base64 32)');
  }
  if (!hasCert && parsed.IDP_TRUST_PROXY === false) {
    problems.push(
      'IDP_TLS_CERT_FILE and IDP_TLS_KEY_FILE are required when DATABASE_URL is set, unless IDP_TRUST_PROXY says a TLS proxy is in front',
    );
  }
}

/** Use of a configuration: the server, or a command that only uses the database. */
export type ConfigPurpose = 'serve' | 'command';

/**
 * Reads the configuration from the environment. Throws a ConfigError that lists every problem
 * found, one line each, naming the variable and what it expects.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  purpose: ConfigPurpose = 'serve',
): Config {
  const problems: string[] = [];
  const values = resolveFileVariables(env, problems);
  const result = configSchema.safeParse(values);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const name = String(issue.path[0] ?? 'configuration');
      const value = values[name];
      const shown =
        value === undefined || SECRET_VARIABLES.has(name) || issue.message.includes('but it is')
          ? ''
          : `, but it is '${value}'`;
      problems.push(`${name} ${issue.message}${shown}`);
    }
    throw new ConfigError(problems);
  }
  const parsed = result.data;
  checkCombinations(parsed, purpose, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  const issuer = new URL(parsed.IDP_ISSUER.replace(/\/+$/, ''));

  return {
    issuer,
    port: parsed.IDP_PORT,
    host: parsed.IDP_HOST,
    tls:
      parsed.IDP_TLS_CERT_FILE && parsed.IDP_TLS_KEY_FILE
        ? { certFile: parsed.IDP_TLS_CERT_FILE, keyFile: parsed.IDP_TLS_KEY_FILE }
        : undefined,
    trustProxy: parsed.IDP_TRUST_PROXY,
    databaseUrl: parsed.DATABASE_URL,
    redisUrl: parsed.REDIS_URL,
    redisPrefix: parsed.IDP_REDIS_PREFIX,
    dataDir: path.resolve(parsed.IDP_DATA_DIR),
    embedded: parsed.DATABASE_URL === undefined,
    cookieKeys: parsed.IDP_COOKIE_KEYS,
    encryptionKeys: parsed.IDP_ENCRYPTION_KEY,
    branding: {
      productName: parsed.IDP_PRODUCT_NAME ?? 'idp',
      logoFile: parsed.IDP_LOGO_FILE && path.resolve(parsed.IDP_LOGO_FILE),
    },
    totpIssuer: parsed.IDP_TOTP_ISSUER ?? parsed.IDP_PRODUCT_NAME ?? issuer.host,
    sessionIdleSeconds: parsed.IDP_SESSION_IDLE,
    sessionMaxSeconds: parsed.IDP_SESSION_MAX,
    lockout: {
      threshold: parsed.IDP_LOCKOUT_THRESHOLD,
      durationSeconds: parsed.IDP_LOCKOUT_DURATION,
      addressLimit: parsed.IDP_ADDRESS_FAILURE_LIMIT,
    },
    metricsPort: parsed.IDP_METRICS_PORT,
    keyActivationDelaySeconds: parsed.IDP_KEY_ACTIVATION_DELAY,
    shutdownTimeoutSeconds: parsed.IDP_SHUTDOWN_TIMEOUT,
    logLevel: parsed.LOG_LEVEL,
  };
}
