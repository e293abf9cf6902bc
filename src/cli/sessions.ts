import type Provider from 'oidc-provider';
import type { Logger } from '../logger.ts';
import { createFindAccount } from '../oidc/account.ts';
import { loadSigningKeys } from '../oidc/keys.ts';
import { createProvider, type ProviderOptions } from '../oidc/provider.ts';
import { endAccountSessions, type RevocationCause } from '../oidc/sessions.ts';
import { createSignIn, type Services } from '../services.ts';
import { cliActor } from './audit.ts';

/**
 * Builds a provider in the command's process, only to sign back-channel logout tokens with the
 * server's keys. Returns undefined when there are no keys yet, since then no app has a session.
 */
async function logoutSigner(
  services: Services,
  adapter: ProviderOptions['adapter'],
  logger: Logger,
): Promise<Provider | undefined> {
  const { keys } = await loadSigningKeys(services.database, services.encryptor);
  if (keys.length === 0) return undefined;

  return createProvider({
    issuer: services.config.issuer,
    adapter,
    findAccount: createFindAccount(services.accounts),
    signingKeys: keys,
    cookieKeys: services.cookieKeys,
    sessionIdleSeconds: services.config.sessionIdleSeconds,
    sessionMaxSeconds: services.config.sessionMaxSeconds,
    logger,
    needsSecondFactor: () => Promise.resolve(false),
  });
}

/**
 * Ends every session, grant and refresh token of a user from a command, and posts back-channel
 * logout tokens to the apps of those sessions. Without Redis the sessions live inside the server
 * process, out of the command's reach, so it only warns.
 */
export async function endSessionsFromCommand(
  services: Services,
  logger: Logger,
  account: { id: string; username: string },
  cause: RevocationCause,
  out: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  if (!services.redis) {
    logger.warn(
      { accountId: account.id },
      'REDIS_URL is not set, so sessions live inside the server process and cannot be ended from here; they end when they expire or the server restarts',
    );

    return;
  }
  const signIn = createSignIn(services, logger);
  const ended = await endAccountSessions(
    {
      sessions: signIn.deps.sessions,
      provider: () => logoutSigner(services, signIn.adapter, logger),
      audit: services.audit,
      logger,
    },
    { account, cause, actor: cliActor() },
  );
  out.write(`ended ${ended} session(s) and grant(s) of ${account.username}\n`);
}
