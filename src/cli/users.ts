import type { Command } from 'commander';
import { createLogger, type Logger } from '../logger.ts';
import type { Services } from '../services.ts';
import { AppError } from '../errors.ts';
import { createRateLimiter } from '../security/rate-limit.ts';
import { cliActor } from './audit.ts';
import { endSessionsFromCommand } from './sessions.ts';
import { printJson, printTable, readRequiredSecret } from './io.ts';
import type { WithServices } from './main.ts';

export function registerUserCommands(program: Command, withServices: WithServices): void {
  const users = program.command('users').description('manage user accounts');

  users
    .command('create')
    .description('create a user; the password is read from standard input')
    .argument('<username>', 'sign-in name; compared trimmed, NFKC-normalised and case-folded')
    .option('--email <email>', 'email address, released with the email scope')
    .option('--name <name>', 'display name, released with the profile scope')
    .requiredOption('--password-stdin', 'read the password from standard input')
    .action(async (username: string, options: { email?: string; name?: string }) => {
      const password = await readRequiredSecret('Password');
      await withServices(async ({ accounts, audit }) => {
        const account = await accounts.create({ username, password, ...options });
        await audit.record({
          event: 'user.created',
          accountId: account.id,
          username: account.username,
          detail: { actor: cliActor() },
        });
        process.stdout.write(`created user ${account.username} (${account.id})\n`);
      });
    });

  users
    .command('set-password')
    .description("replace a user's password with one read from standard input")
    .argument('<username>')
    .requiredOption('--password-stdin', 'read the password from standard input')
    .action(async (username: string) => {
      const password = await readRequiredSecret('Password');
      await withServices(
        async (services) => {
          const account = await services.accounts.get(username);
          await services.accounts.setPassword(account.id, password);
          await services.audit.record({
            event: 'password.changed',
            accountId: account.id,
            username: account.username,
            detail: { actor: cliActor() },
          });
          process.stdout.write(`password of ${account.username} changed\n`);
          await endSessionsFromCommand(services, commandLogger(), account, 'password_changed');
        },
        { redis: true },
      );
    });

  for (const [name, disabled] of [
    ['disable', true],
    ['enable', false],
  ] as const) {
    users
      .command(name)
      .description(disabled ? 'stop a user from signing in' : 'let a disabled user sign in again')
      .argument('<username>')
      .action(async (username: string) => {
        await withServices(
          async (services) => {
            const account = await services.accounts.get(username);
            await services.accounts.setDisabled(account.id, disabled);
            await services.audit.record({
              event: disabled ? 'user.disabled' : 'user.enabled',
              accountId: account.id,
              username: account.username,
              detail: { actor: cliActor() },
            });
            process.stdout.write(`user ${account.username} ${disabled ? 'disabled' : 'enabled'}\n`);
            if (disabled) {
              await endSessionsFromCommand(services, commandLogger(), account, 'disabled');
            }
          },
          { redis: disabled },
        );
      });
  }

  users
    .command('reset-2fa')
    .description(
      "remove a user's TOTP authenticator and recovery codes, and end the user's sessions, grants and refresh tokens; the next sign-in sets up an authenticator again when 2FA is required",
    )
    .argument('<username>')
    .action(async (username: string) => {
      await withServices((services) => resetTwoFactor(services, username), { redis: true });
    });

  users
    .command('unlock')
    .description("clear a user's failed sign-in counters and any lock")
    .argument('<username>')
    .action(async (username: string) => {
      await withServices(
        async ({ accounts, audit, redis, redisPrefix }) => {
          if (!redis) {
            throw new AppError(
              'unavailable',
              'REDIS_URL is not set, so failure counters live inside the running server; a lock ends by itself (15 minutes by default) or when the server restarts',
            );
          }
          const account = await accounts.get(username);
          const limiter = createRateLimiter(redis, redisPrefix);
          const before = await limiter.status(account.username);
          await limiter.unlock(account.username);
          await audit.record({
            event: 'account.unlocked',
            accountId: account.id,
            username: account.username,
            detail: { actor: cliActor(), wasLocked: before.locked, failures: before.failures },
          });
          process.stdout.write(
            before.locked || before.failures > 0
              ? `user ${account.username} unlocked (${before.locked ? 'was locked, ' : ''}${before.failures} failure(s) cleared)\n`
              : `user ${account.username} had no failures or lock\n`,
          );
        },
        { redis: true },
      );
    });

  users
    .command('list')
    .description('list users')
    .option('--json', 'one JSON object per line')
    .action(async (options: { json?: boolean }) => {
      await withServices(async ({ accounts }) => {
        const list = await accounts.list();
        if (options.json) {
          for (const account of list) {
            printJson({
              id: account.id,
              username: account.username,
              email: account.email,
              name: account.name,
              disabled: account.disabled,
              createdAt: account.createdAt.toISOString(),
            });
          }

          return;
        }
        printTable(
          ['USERNAME', 'ID', 'EMAIL', 'NAME', 'STATUS'],
          list.map((account) => [
            account.username,
            account.id,
            account.email ?? '',
            account.name ?? '',
            account.disabled ? 'disabled' : 'active',
          ]),
        );
      });
    });
}

/**
 * Removes a user's authenticator and recovery codes, then ends every session and grant of the
 * user in Redis (refresh and access tokens go with their grants). Writes what it did to `out`.
 */
export async function resetTwoFactor(
  services: Services,
  username: string,
  options: { out?: NodeJS.WritableStream; logger?: Logger } = {},
): Promise<void> {
  const out = options.out ?? process.stdout;
  const logger = options.logger ?? createLogger('info', process.stderr);
  const account = await services.accounts.get(username);
  const removed = await services.mfa.reset(account.id);
  await services.audit.record({
    event: 'mfa.reset',
    accountId: account.id,
    username: account.username,
    detail: { actor: cliActor(), removed },
  });
  logger.info({ accountId: account.id, removed }, '2FA reset');
  out.write(
    removed
      ? `two-step sign-in of ${account.username} removed\n`
      : `${account.username} had no two-step sign-in\n`,
  );
  await endSessionsFromCommand(services, logger, account, 'mfa_reset', out);
}

/** The logger of a command: warnings and errors only, on standard error. */
function commandLogger(): Logger {
  return createLogger('warn', process.stderr);
}
