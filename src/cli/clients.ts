import type { Command } from 'commander';
import { cliActor } from './audit.ts';
import { printJson, printTable, readRequiredSecret } from './io.ts';
import type { WithServices } from './main.ts';

const collect = (value: string, previous: string[] = []) => [...previous, value];

interface CreateOptions {
  clientId: string;
  redirectUri?: string[];
  postLogoutRedirectUri?: string[];
  public?: boolean;
  clientSecretStdin?: boolean;
  backchannelLogoutUri?: string;
  require2fa?: boolean;
  consent?: boolean;
  name?: string;
}

/** Returns the store's fields of the options shared by `create` and `update`. */
function clientFields(options: Omit<CreateOptions, 'clientId'>, clientSecret?: string) {
  return {
    name: options.name,
    redirectUris: options.redirectUri,
    postLogoutRedirectUris: options.postLogoutRedirectUri,
    backchannelLogoutUri: options.backchannelLogoutUri,
    isPublic: options.public,
    clientSecret,
    require2fa: options.require2fa,
    consent: options.consent,
  };
}

export function registerClientCommands(program: Command, withServices: WithServices): void {
  const clients = program.command('clients').description('manage the apps that sign users in');

  clients
    .command('create')
    .description(
      'register an app; a confidential app without --client-secret-stdin gets a generated secret, printed once',
    )
    .requiredOption('--client-id <id>', 'the client_id the app sends')
    .requiredOption('--redirect-uri <uri>', 'exact redirect URI; repeat for several', collect)
    .option(
      '--post-logout-redirect-uri <uri>',
      'where logout may send the user back; repeatable',
      collect,
    )
    .option('--public', 'a browser or native app without a secret (PKCE only)')
    .option(
      '--client-secret-stdin',
      'read the client secret (32 characters or more) from standard input',
    )
    .option('--backchannel-logout-uri <uri>', 'where idp posts a logout token when a session ends')
    .option('--require-2fa', 'users of this app must pass a second factor')
    .option('--consent', 'ask users to allow access (for apps run by someone else)')
    .option('--name <name>', 'name shown to users on the sign-in page')
    .action(async (options: CreateOptions) => {
      const clientSecret = options.clientSecretStdin
        ? await readRequiredSecret('Client secret')
        : undefined;
      await withServices(async ({ clients: store, audit }) => {
        const { client, generatedSecret } = await store.create({
          ...clientFields(options, clientSecret),
          clientId: options.clientId,
          redirectUris: options.redirectUri ?? [],
        });
        await audit.record({
          event: 'client.created',
          clientId: client.clientId,
          detail: {
            actor: cliActor(),
            public: client.isPublic,
            require2fa: client.require2fa,
            consent: client.consent,
          },
        });
        process.stdout.write(`created client ${client.clientId}\n`);
        if (generatedSecret) {
          process.stdout.write(
            `client secret (shown only now, store it in the app's configuration): ${generatedSecret}\n`,
          );
        }
      });
    });

  clients
    .command('update')
    .description(
      'change a registered app; options left out keep their value, and a repeated option replaces the whole list',
    )
    .argument('<client-id>')
    .option('--redirect-uri <uri>', 'exact redirect URI; repeat for several', collect)
    .option(
      '--post-logout-redirect-uri <uri>',
      'where logout may send the user back; repeatable',
      collect,
    )
    .option('--public', 'make it a public app without a secret (PKCE only)')
    .option(
      '--client-secret-stdin',
      'read a new client secret (32 characters or more) from standard input',
    )
    .option('--backchannel-logout-uri <uri>', 'where idp posts a logout token when a session ends')
    .option('--require-2fa', 'users of this app must pass a second factor')
    .option('--no-require-2fa', 'the server-wide setting decides (the default)')
    .option('--consent', 'ask users to allow access (for apps run by someone else)')
    .option('--no-consent', 'do not ask users to allow access')
    .option('--name <name>', 'name shown to users on the sign-in page')
    .action(async (clientId: string, options: Omit<CreateOptions, 'clientId'>) => {
      const clientSecret = options.clientSecretStdin
        ? await readRequiredSecret('Client secret')
        : undefined;
      await withServices(async ({ clients: store, audit }) => {
        const client = await store.update(clientId, clientFields(options, clientSecret));
        await audit.record({
          event: 'client.updated',
          clientId: client.clientId,
          detail: {
            actor: cliActor(),
            // The option names given, never their values: a new secret is only noted.
            changed: Object.keys(options).sort().join(' '),
            public: client.isPublic,
            require2fa: client.require2fa,
            consent: client.consent,
          },
        });
        process.stdout.write(
          `updated client ${client.clientId}: ${client.isPublic ? 'public' : 'confidential'}, 2FA ${client.require2fa ? 'required' : 'per server setting'}, consent ${client.consent ? 'asked' : 'not asked'}\n`,
        );
      });
    });

  clients
    .command('list')
    .description('list registered apps')
    .option('--json', 'one JSON object per line')
    .action(async (options: { json?: boolean }) => {
      await withServices(async ({ clients: store }) => {
        const list = await store.list();
        if (options.json) {
          for (const client of list)
            printJson({ ...client, createdAt: client.createdAt.toISOString() });

          return;
        }
        printTable(
          ['CLIENT ID', 'NAME', 'TYPE', 'REDIRECT URIS', '2FA', 'CONSENT'],
          list.map((client) => [
            client.clientId,
            client.name ?? '',
            client.isPublic ? 'public' : 'confidential',
            client.redirectUris.join(' '),
            client.require2fa ? 'required' : '-',
            client.consent ? 'asked' : '-',
          ]),
        );
      });
    });

  clients
    .command('delete')
    .description('remove an app; its users can no longer sign in to it')
    .argument('<client-id>')
    .action(async (clientId: string) => {
      await withServices(async ({ clients: store, audit }) => {
        await store.delete(clientId);
        await audit.record({ event: 'client.deleted', clientId, detail: { actor: cliActor() } });
        process.stdout.write(`deleted client ${clientId}\n`);
      });
    });
}
