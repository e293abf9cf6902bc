import type { Command } from 'commander';
import type { Config } from '../config.ts';
import { createRedisClient, effectiveRedisPrefix, parseRedisUrl } from '../db/redis.ts';
import { announceKeyChange, KEY_RELOAD_SECONDS } from '../oidc/keyring.ts';
import { listSigningKeys, rotateSigningKeys } from '../oidc/keys.ts';
import { reencryptStoredSecrets } from '../security/reencrypt.ts';
import { describeError } from '../server/outages.ts';
import { cliActor } from './audit.ts';
import { printJson, printTable } from './io.ts';
import type { WithServices } from './main.ts';

/**
 * Notifies running nodes to reload their keys now. Without Redis, or when Redis is unreachable,
 * they still pick the change up at their next timed reload.
 */
async function announce(config: Config): Promise<void> {
  const later = `running nodes pick the change up within ${KEY_RELOAD_SECONDS} s`;
  if (!config.redisUrl) {
    process.stdout.write(`${later}\n`);

    return;
  }
  const target = parseRedisUrl(config.redisUrl);
  const redis = createRedisClient(target);
  redis.on('error', () => {});
  try {
    await redis.connect();
    await announceKeyChange(redis, effectiveRedisPrefix(target, config.redisPrefix));
    process.stdout.write('running nodes were told to reload their keys\n');
  } catch (error) {
    process.stderr.write(`idp: could not reach Redis (${describeError(error)}); ${later}\n`);
  } finally {
    redis.disconnect();
  }
}

const iso = (value: Date | null) => (value ? value.toISOString() : '');

export function registerKeyCommands(program: Command, withServices: WithServices): void {
  const keys = program.command('keys').description('manage signing and encryption keys');

  keys
    .command('list')
    .description('list signing keys: next (published, not signing yet), active, retired')
    .option('--json', 'one JSON object per line')
    .action(async (options: { json?: boolean }) => {
      await withServices(async ({ database }) => {
        const list = await listSigningKeys(database);
        if (options.json) {
          for (const key of list) {
            printJson({
              ...key,
              createdAt: key.createdAt.toISOString(),
              activateAt: key.activateAt?.toISOString() ?? null,
              retiredAt: key.retiredAt?.toISOString() ?? null,
            });
          }

          return;
        }
        printTable(
          ['KID', 'ALG', 'STATE', 'SIGNS FROM', 'RETIRED'],
          list.map((key) => [key.kid, key.alg, key.state, iso(key.activateAt), iso(key.retiredAt)]),
        );
      });
    });

  keys
    .command('rotate')
    .description(
      'add a signing key per algorithm: published at once, signing after IDP_KEY_ACTIVATION_DELAY; the key it replaces stays published until the tokens it signed have expired',
    )
    .option('--activate', 'sign with the new key (or the one already waiting) at once')
    .action(async (options: { activate?: boolean }) => {
      let config: Config | undefined;
      await withServices(async (services) => {
        config = services.config;
        const changed = await rotateSigningKeys(services.database, services.encryptor, {
          activate: options.activate === true,
          delaySeconds: services.config.keyActivationDelaySeconds,
        });
        for (const key of changed) {
          await services.audit.record({
            event: 'signing_key.rotated',
            detail: {
              actor: cliActor(),
              kid: key.kid,
              alg: key.alg,
              state: key.state,
              activateAt: key.activateAt?.toISOString() ?? null,
            },
          });
          process.stdout.write(
            key.state === 'active'
              ? `${key.alg} key ${key.kid} signs from now; the key it replaced stays published\n`
              : `${key.alg} key ${key.kid} is published and signs from ${iso(key.activateAt)}\n`,
          );
        }
      });
      if (config) await announce(config);
    });

  keys
    .command('reencrypt')
    .description(
      'encrypt every stored secret with the newest IDP_ENCRYPTION_KEY, so that older keys can be removed',
    )
    .action(async () => {
      await withServices(async ({ database, encryptor }) => {
        const results = await reencryptStoredSecrets(database, encryptor);
        for (const result of results) {
          process.stdout.write(
            `${result.what}: ${result.moved} of ${result.total} re-encrypted with key ${encryptor.currentKeyId}\n`,
          );
        }
        process.stdout.write(
          'every stored secret now uses the first IDP_ENCRYPTION_KEY; the others can be removed\n',
        );
      });
    });
}
