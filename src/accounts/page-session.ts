import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { ACCOUNT_CLIENT_ID } from '../oidc/clients.ts';
import { SESSION_COOKIE, sessionLifetime } from '../oidc/provider.ts';
import { ACR_MFA } from '../mfa/policy.ts';
import type { SecondFactorPolicy } from '../mfa/policy.ts';
import type { MfaStatus, MfaStore } from '../mfa/store.ts';
import type { Account, AccountStore } from './store.ts';

/*
 * The account page has no login of its own. It reads oidc-provider's session cookie, the one
 * that idp's sign-in sets for every app. When there is no usable session, it signs the user in
 * through idp's own authorization endpoint as the built-in public client `idp-account`. So the
 * password, second-factor and enrolment steps and the 2FA policy are exactly those of any app.
 * A session is usable when its account exists, is enabled, and the session has the second
 * factor whenever the policy needs one for that account.
 */

type ProviderSession = Awaited<ReturnType<Provider['Session']['get']>>;

export interface SignedInUser {
  session: ProviderSession;
  account: Account;
  mfa: MfaStatus;
}

const STATE_COOKIE = 'idp.account_state';

/** Returns the signed-in user of the request, or undefined when the user must sign in (again). */
export async function signedInUser(
  ctx: Context,
  deps: {
    provider: Provider;
    accounts: AccountStore;
    mfa: MfaStore;
    policy: SecondFactorPolicy;
  },
): Promise<SignedInUser | undefined> {
  const session = await deps.provider.Session.get(ctx);
  if (!session.accountId) return undefined;
  const account = await deps.accounts.findById(session.accountId);
  if (!account || account.disabled) return undefined;
  if (session.acr !== ACR_MFA) {
    const decision = await deps.policy.decide({
      accountId: account.id,
      clientRequires2fa: false,
      params: {},
    });
    if (decision.reasons.length > 0) return undefined;
  }

  return { session, account, mfa: await deps.mfa.status(account.id) };
}

/** Sends the browser through idp's sign-in, back to /account/callback. */
export function redirectToSignIn(ctx: Context, issuer: string): void {
  const state = randomBytes(16).toString('base64url');
  // PKCE is required of every client. The account page never redeems the code, so the verifier
  // is not kept.
  const challenge = createHash('sha256').update(randomBytes(32)).digest('base64url');
  ctx.cookies.set(STATE_COOKIE, state, {
    signed: true,
    httpOnly: true,
    secure: true,
    sameSite: 'lax',
    path: '/account',
    maxAge: 30 * 60 * 1000,
  });
  const url = new URL('/auth', issuer);
  url.search = new URLSearchParams({
    client_id: ACCOUNT_CLIENT_ID,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: new URL('/account/callback', issuer).href,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  ctx.status = 303;
  ctx.redirect(url.href);
}

/** Checks the `state` of the sign-in callback against the cookie set when it began. */
export function callbackStateMatches(ctx: Context): boolean {
  const expected = ctx.cookies.get(STATE_COOKIE, { signed: true });
  ctx.cookies.set(STATE_COOKIE, null, { path: '/account', secure: true });
  const given = typeof ctx.query['state'] === 'string' ? ctx.query['state'] : '';

  return expected !== undefined && given !== '' && safeEqual(expected, given);
}

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);

  return left.length === right.length && timingSafeEqual(left, right);
}

function formToken(key: string, sessionUid: string): string {
  return createHmac('sha256', key).update(`idp account form\0${sessionUid}`).digest('base64url');
}

/**
 * Returns the CSRF token of the account forms: an HMAC of the session's uid under the newest
 * cookie key, so it is bound to this browser session and cannot be made by another site.
 */
export function csrfToken(cookieKeys: string[], user: SignedInUser): string {
  return formToken(cookieKeys[0] as string, user.session.uid);
}

/** Checks a posted CSRF token. Tokens made under any current cookie key are accepted. */
export function csrfTokenValid(cookieKeys: string[], user: SignedInUser, given: string): boolean {
  return cookieKeys.some((key) => safeEqual(formToken(key, user.session.uid), given));
}

/** Idle and absolute session lifetimes in seconds (IDP_SESSION_IDLE and IDP_SESSION_MAX). */
export interface SessionLifetimes {
  idleSeconds: number;
  maxSeconds: number;
}

/**
 * Counts a use of the account page as activity: renews the session's idle lifetime, as any
 * sign-in request does, along with the session cookie's expiry. Returns the seconds left.
 */
export async function renewSession(
  ctx: Context,
  provider: Provider,
  user: SignedInUser,
  lifetimes: SessionLifetimes,
): Promise<number> {
  const { session } = user;
  const seconds = sessionLifetime(session.loginTs, lifetimes.idleSeconds, lifetimes.maxSeconds);
  await session.save(seconds);
  ctx.cookies.set(provider.cookieName('session'), session.jti, {
    ...SESSION_COOKIE,
    expires: new Date((session.exp ?? 0) * 1000),
  });

  return seconds;
}
