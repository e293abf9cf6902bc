import type { Account as ProviderAccount, FindAccount } from 'oidc-provider';
import type { AccountStore } from '../accounts/store.ts';
import { ShortCache } from '../short-cache.ts';

/** Claims released per scope. `sub` is the account's UUID, never the username. */
export const CLAIMS_BY_SCOPE = {
  openid: ['sub'],
  profile: ['preferred_username', 'name'],
  email: ['email'],
} as const;

/**
 * Seconds the server keeps an account read for a token, userinfo or refresh request. Sign-in and
 * authorization requests always read it fresh, so a disabled account must sign in again at once.
 */
export const ACCOUNT_CACHE_SECONDS = 5;

/** Accounts kept at once, a few hundred bytes each. */
const ACCOUNT_CACHE_SIZE = 10_000;

/** Fields of an account row that findAccount uses, without the password hash. */
interface AccountClaims {
  id: string;
  username: string;
  name: string | null;
  email: string | null;
  disabled: boolean;
}

/**
 * Returns oidc-provider's findAccount: disabled and deleted accounts are not found. With
 * `cacheSeconds`, accounts looked up for a token are kept that long, because every token and
 * userinfo request looks its account up. oidc-provider passes no token on authorization requests.
 */
export function createFindAccount(
  accounts: AccountStore,
  options: { cacheSeconds?: number; now?: () => number } = {},
): FindAccount {
  const cache = options.cacheSeconds
    ? new ShortCache<AccountClaims>({
        seconds: options.cacheSeconds,
        size: ACCOUNT_CACHE_SIZE,
        now: options.now,
      })
    : undefined;
  const read = async (sub: string): Promise<AccountClaims | undefined> => {
    const found = await accounts.findById(sub);

    return (
      found && {
        id: found.id,
        username: found.username,
        name: found.name,
        email: found.email,
        disabled: found.disabled,
      }
    );
  };

  return async (_ctx, sub, token): Promise<ProviderAccount | undefined> => {
    const account = await (cache && token ? cache.get(sub, () => read(sub)) : read(sub));
    if (!account || account.disabled) return undefined;

    return {
      accountId: account.id,
      claims: () => ({
        sub: account.id,
        preferred_username: account.username,
        ...(account.name ? { name: account.name } : {}),
        ...(account.email ? { email: account.email } : {}),
      }),
    };
  };
}
