import type { Account as ProviderAccount, FindAccount } from 'oidc-provider';
import type { AccountStore } from '../accounts/store.ts';

/** Claims released per scope. `sub` is the account's UUID, never the username. */
export const CLAIMS_BY_SCOPE = {
  openid: ['sub'],
  profile: ['preferred_username', 'name'],
  email: ['email'],
} as const;

/** Returns oidc-provider's findAccount: disabled and deleted accounts are not found. */
export function createFindAccount(accounts: AccountStore): FindAccount {
  return async (_ctx, sub): Promise<ProviderAccount | undefined> => {
    const account = await accounts.findById(sub);
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
