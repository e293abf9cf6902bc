import type { Database } from '../db/database.ts';
import { SETTINGS } from '../settings.ts';

/** `acr` of a sign-in with the password only. */
export const ACR_PASSWORD = 'urn:idp:acr:pwd';
/** `acr` of a sign-in with the password and a second factor (TOTP or a recovery code). */
export const ACR_MFA = 'urn:idp:acr:mfa';
/** The OpenID PAPE policy URI for multi-factor sign-in, accepted in `acr_values` like ACR_MFA. */
export const PAPE_MULTI_FACTOR = 'http://schemas.openid.net/pape/policies/2007/06/multi-factor';

export const ACR_VALUES = [ACR_PASSWORD, ACR_MFA];

/**
 * `amr` values (RFC 8176) by the way the user signed in. A recovery code is a single-use look-up
 * secret: it is a second factor (`mfa`), but RFC 8176 has no value for it and `otp` would tell the
 * app that an authenticator app was used, so it adds nothing else.
 */
export const AMR = {
  password: ['pwd'],
  totp: ['pwd', 'otp', 'mfa'],
  recoveryCode: ['pwd', 'mfa'],
} as const;

export type SecondFactorMethod = 'totp' | 'recoveryCode';

/** Reasons a sign-in needs a second factor, in the order the policy checks them. */
export type SecondFactorReason = 'enrolled' | 'server' | 'client' | 'request';

export interface PolicyInput {
  accountId: string;
  /** The `idp_require_2fa` metadata of the client. */
  clientRequires2fa: boolean;
  /** The authorization request parameters (`acr_values`). */
  params: Record<string, unknown>;
}

export interface PolicyDecision {
  /** Whether the account has an authenticator. */
  enrolled: boolean;
  /** The reasons that make the second factor apply, empty when the password is enough. */
  reasons: SecondFactorReason[];
}

/** True when the request's `acr_values` ask for a multi-factor sign-in. */
export function requestAsksForMfa(params: Record<string, unknown>): boolean {
  const values = typeof params['acr_values'] === 'string' ? params['acr_values'].split(' ') : [];

  return values.includes(ACR_MFA) || values.includes(PAPE_MULTI_FACTOR);
}

/**
 * Decides whether a sign-in needs the second step: when the account has TOTP, when the server
 * setting `require-2fa` is on, when the client is registered with `--require-2fa`, or when the
 * request asks for multi-factor in `acr_values`. Reads Postgres on every call (one query), so a
 * change of the server setting applies to the next sign-in on every node.
 */
export class SecondFactorPolicy {
  readonly #db: Database;

  constructor(db: Database) {
    this.#db = db;
  }

  async decide(input: PolicyInput): Promise<PolicyDecision> {
    const rows = await this.#db.query<{ enrolled: boolean; server: unknown }>(
      `SELECT EXISTS (SELECT 1 FROM totp_credentials WHERE account_id = $1) AS enrolled,
              (SELECT value FROM settings WHERE name = 'require-2fa') AS server`,
      [input.accountId],
    );
    const enrolled = rows[0]?.enrolled === true;
    const stored = rows[0]?.server;
    const server = typeof stored === 'boolean' ? stored : SETTINGS['require-2fa'].default;
    const reasons: SecondFactorReason[] = [];
    if (enrolled) reasons.push('enrolled');
    if (server) reasons.push('server');
    if (input.clientRequires2fa) reasons.push('client');
    if (requestAsksForMfa(input.params)) reasons.push('request');

    return { enrolled, reasons };
  }
}
