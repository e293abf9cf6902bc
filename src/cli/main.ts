import { Command, CommanderError } from 'commander';
import { ConfigError, loadConfig } from '../config.ts';
import { migrate } from '../db/migrate.ts';
import { AppError } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { startServer } from '../main.ts';
import { openServices, type Services } from '../services.ts';
import { registerClientCommands } from './clients.ts';
import { registerUserCommands } from './users.ts';

export type WithServices = (work: (services: Services) => Promise<void>) => Promise<void>;

/** Opens the database for one command, logging only warnings to standard error. */
const withServices: WithServices = async (work) => {
  const config = loadConfig(process.env, 'command');
  const logger = createLogger(
    config.logLevel === 'info' ? 'warn' : config.logLevel,
    process.stderr,
  );
  const services = await openServices(config, logger, {
    migrateOnOpen: true,
    redis: false,
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
    logger.info({ signal }, 'stopping');
    const deadline = setTimeout(() => {
      logger.error('in-flight requests did not finish within 10 s; exiting');
      process.exit(1);
    }, 10_000);
    deadline.unref();
    running.close().then(
      () => process.exit(0),
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
  registerUserCommands(program, withServices);
  registerClientCommands(program, withServices);

  return program;
}

/** Runs the `idp` command line; errors become one line on standard error and exit code 1. */
export async function run(argv: string[]): Promise<void> {
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
      process.stderr.write(`idp: ${(error as Error).message ?? String(error)}\n`);
    }
    process.exitCode = 1;
  }
}
