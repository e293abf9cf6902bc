import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Command, CommanderError } from 'commander';
import { ConfigError, loadConfig } from '../config.ts';
import { migrate } from '../db/migrate.ts';
import { AppError } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { startServer } from '../main.ts';
import { describeError } from '../server/outages.ts';
import { openServices, type Services } from '../services.ts';
import { registerAuditCommands } from './audit.ts';
import { registerClientCommands } from './clients.ts';
import { registerKeyCommands } from './keys.ts';
import { registerSettingsCommands } from './settings.ts';
import { registerUserCommands } from './users.ts';

export type WithServices = (
  work: (services: Services) => Promise<void>,
  options?: { redis?: boolean },
) => Promise<void>;

/**
 * Opens the database (and Redis when `options.redis` is set) for one command, logging only
 * warnings to standard error.
 */
const withServices: WithServices = async (work, options = {}) => {
  const config = loadConfig(process.env, 'command');
  const logger = createLogger(
    config.logLevel === 'info' ? 'warn' : config.logLevel,
    process.stderr,
  );
  const services = await openServices(config, logger, {
    migrateOnOpen: true,
    redis: options.redis ?? false,
    role: 'command',
  });
  try {
    await work(services);
  } finally {
    await services.close();
  }
};

async function serve(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const running = await startServer(config, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    const seconds = config.shutdownTimeoutSeconds;
    const deadline = setTimeout(() => {
      logger.error(`requests in flight did not finish within ${seconds} s; cutting them`);
      running.destroyConnections();
      process.exit(1);
    }, seconds * 1000);
    deadline.unref();
    // close() stops listening before it returns, so the line below is true when it is read.
    const closed = running.close();
    logger.info({ signal }, 'stopping: no new connections; finishing requests in flight');
    closed.then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => running.reloadTls());
}

/**
 * Asks the local server for /healthz. It checks only that this process answers, so the
 * certificate, made for the public name and not for 127.0.0.1, is not verified.
 */
async function healthcheck(): Promise<void> {
  const config = loadConfig(process.env, 'command');
  const host = ['0.0.0.0', '::', ''].includes(config.host) ? '127.0.0.1' : config.host;
  const plain = config.trustProxy !== false && !config.tls;
  const send = plain ? httpRequest : httpsRequest;
  const status = await new Promise<number>((resolve, reject) => {
    const req = send(
      { host, port: config.port, path: '/healthz', timeout: 3000, rejectUnauthorized: false },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 3 s')));
    req.on('error', reject);
    req.end();
  });
  if (status !== 200) throw new Error(`/healthz answered ${status}`);
}

export function buildProgram(): Command {
  const program = new Command('idp')
    .description('OpenID Connect identity provider: password and TOTP sign-in over TLS')
    .configureOutput({
      // Usage errors: one line, in the same form as every other error of the command.
      outputError: (message, write) =>
        write(`idp: ${message.replace(/^error: /, '').trimEnd()} (see --help)\n`),
    })
    .exitOverride();

  program.command('serve').description('start the server').action(serve);
  program
    .command('migrate')
    .description('apply pending database migrations, then exit')
    .action(async () => {
      const config = loadConfig(process.env, 'command');
      const logger = createLogger('warn', process.stderr);
      const services = await openServices(config, logger, {
        migrateOnOpen: false,
        redis: false,
        role: 'command',
      });
      try {
        const applied = await migrate(services.database);
        process.stdout.write(
          applied.length === 0
            ? 'database is up to date\n'
            : `applied ${applied.length} migration(s): ${applied.join(', ')}\n`,
        );
      } finally {
        await services.close();
      }
    });
  program
    .command('healthcheck')
    .description('exit 0 when the server on this machine answers /healthz (for HEALTHCHECK)')
    .action(healthcheck);
  registerUserCommands(program, withServices);
  registerClientCommands(program, withServices);
  registerKeyCommands(program, withServices);
  registerSettingsCommands(program, withServices);
  registerAuditCommands(program, withServices);

  return program;
}

/** Runs the `idp` command line; errors become one line on standard error and exit code 1. */
export async function run(argv: string[]): Promise<void> {
  // A reader that stops early, as `| head` does, closes the pipe. The rest of the output then has
  // nowhere to go, and the command has not failed.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(process.exitCode ?? 0);
  });
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode;

      return;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`idp: ${error.message}\n`);
    } else if (error instanceof AppError) {
      process.stderr.write(`idp: ${error.message}\n`);
    } else {
      process.stderr.write(`idp: ${describeError(error)}\n`);
    }
    process.exitCode = 1;
  }
}
