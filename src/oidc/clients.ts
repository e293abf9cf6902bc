import { randomBytes } from 'node:crypto';
import type { Queryable } from '../db/database.ts';
import { AppError } from '../errors.ts';
import type { Encryptor } from '../security/encryption.ts';

export interface ClientInput {
  clientId: string;
  name?: string;
  redirectUris: string[];
  postLogoutRedirectUris?: string[];
  backchannelLogoutUri?: string;
  /** A public client (a browser or native app) has no secret. */
  isPublic?: boolean;
  /** The secret of a confidential client; one is generated when it is missing. */
  clientSecret?: string;
  require2fa?: boolean;
  consent?: boolean;
}

/** Changes to a registered client. Fields left out keep their value. */
export type ClientChanges = Partial<Omit<ClientInput, 'clientId'>>;

export interface ClientRecord {
  clientId: string;
  name: string | null;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  backchannelLogoutUri: string | null;
  isPublic: boolean;
  require2fa: boolean;
  consent: boolean;
  createdAt: Date;
}

interface ClientRow {
  client_id: string;
  name: string | null;
  metadata: Record<string, unknown>;
  secret_ciphertext: string | null;
  require_2fa: boolean;
  consent: boolean;
  created_at: Date | string;
}

const CLIENT_ID_PATTERN = /^[A-Za-z0-9._~-]{1,128}$/;

/** Client id of the built-in client of the /account page, reserved so that no app takes it. */
export const ACCOUNT_CLIENT_ID = 'idp-account';

const MIN_SECRET_LENGTH = 32;

/** Additional data that binds a client secret's ciphertext to its client. */
export const secretContext = (clientId: string) => `client-secret:${clientId}`;

const isLoopback = (host: string) => ['localhost', '127.0.0.1', '[::1]'].includes(host);

/**
 * Checks a redirect or logout URI: absolute, https (http only for loopback hosts, as native and
 * development apps use), and with no fragment, as OAuth 2.0 requires.
 */
export function uriProblem(uri: string, option: string): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return `${option} '${uri}' is not an absolute URI`;
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
    return `${option} '${uri}' must use https (http is accepted only for localhost)`;
  }
  if (url.hash !== '' || uri.includes('#')) return `${option} '${uri}' must not have a fragment`;
  if (url.username || url.password) return `${option} '${uri}' must not contain credentials`;

  return undefined;
}

function validate(input: ClientInput): void {
  const problems: string[] = [];
  if (!CLIENT_ID_PATTERN.test(input.clientId)) {
    problems.push(
      `client id '${input.clientId}' must be 1 to 128 characters of letters, digits, '.', '_', '~' or '-'`,
    );
  }
  if (input.clientId === ACCOUNT_CLIENT_ID) {
    problems.push(`client id '${ACCOUNT_CLIENT_ID}' is reserved for idp's own account page`);
  }
  if (input.name !== undefined && /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(input.name)) {
    problems.push('--name must not contain control or formatting characters');
  }
  if (input.redirectUris.length === 0) problems.push('at least one --redirect-uri is required');
  for (const uri of input.redirectUris) problems.push(uriProblem(uri, '--redirect-uri') ?? '');
  for (const uri of input.postLogoutRedirectUris ?? []) {
    problems.push(uriProblem(uri, '--post-logout-redirect-uri') ?? '');
  }
  if (input.backchannelLogoutUri) {
    problems.push(uriProblem(input.backchannelLogoutUri, '--backchannel-logout-uri') ?? '');
  }
  if (input.isPublic && input.clientSecret !== undefined) {
    problems.push('a public client has no secret; drop --public or --client-secret-stdin');
  }
  if (input.clientSecret !== undefined && input.clientSecret.length < MIN_SECRET_LENGTH) {
    problems.push(`client secret must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  const found = problems.filter((problem) => problem !== '');
  if (found.length > 0) throw new AppError('invalid_input', found.join('; '));
}

function toMetadata(input: ClientInput): Record<string, unknown> {
  return {
    client_id: input.clientId,
    ...(input.name ? { client_name: input.name } : {}),
    redirect_uris: input.redirectUris,
    post_logout_redirect_uris: input.postLogoutRedirectUris ?? [],
    ...(input.backchannelLogoutUri
      ? {
          backchannel_logout_uri: input.backchannelLogoutUri,
          backchannel_logout_session_required: true,
        }
      : {}),
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: input.isPublic ? 'none' : 'client_secret_basic',
  };
}

function toRecord(row: ClientRow): ClientRecord {
  const metadata = row.metadata as {
    redirect_uris?: string[];
    post_logout_redirect_uris?: string[];
    backchannel_logout_uri?: string;
    token_endpoint_auth_method?: string;
  };

  return {
    clientId: row.client_id,
    name: row.name,
    redirectUris: metadata.redirect_uris ?? [],
    postLogoutRedirectUris: metadata.post_logout_redirect_uris ?? [],
    backchannelLogoutUri: metadata.backchannel_logout_uri ?? null,
    isPublic: metadata.token_endpoint_auth_method === 'none',
    require2fa: row.require_2fa,
    consent: row.consent,
    createdAt: new Date(row.created_at),
  };
}

/** Queries of the `clients` table; client secrets are stored encrypted. */
export class ClientStore {
  readonly #db: Queryable;
  readonly #encryptor: Encryptor;

  constructor(db: Queryable, encryptor: Encryptor) {
    this.#db = db;
    this.#encryptor = encryptor;
  }

  /** Registers a client. Returns the secret when one was generated, so it can be shown once. */
  async create(input: ClientInput): Promise<{ client: ClientRecord; generatedSecret?: string }> {
    validate(input);
    const generatedSecret =
      input.isPublic || input.clientSecret !== undefined
        ? undefined
        : randomBytes(32).toString('base64url');
    const secret = input.clientSecret ?? generatedSecret;
    try {
      const rows = await this.#db.query<ClientRow>(
        `INSERT INTO clients (client_id, name, metadata, secret_ciphertext, require_2fa, consent)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
        [
          input.clientId,
          input.name ?? null,
          JSON.stringify(toMetadata(input)),
          secret === undefined
            ? null
            : this.#encryptor.encrypt(secret, secretContext(input.clientId)),
          input.require2fa ?? false,
          input.consent ?? false,
        ],
      );

      return { client: toRecord(rows[0] as ClientRow), generatedSecret };
    } catch (error) {
      if ((error as { code?: string }).code === '23505') {
        throw new AppError('conflict', `client '${input.clientId}' already exists`);
      }
      throw error;
    }
  }

  /**
   * Changes a registered client. `isPublic: true` drops its secret, and a new `clientSecret` makes
   * it confidential with that secret. Returns the record after the change.
   */
  async update(clientId: string, changes: ClientChanges): Promise<ClientRecord> {
    const rows = await this.#db.query<ClientRow>('SELECT * FROM clients WHERE client_id = $1', [
      clientId,
    ]);
    const row = rows[0];
    if (!row) throw new AppError('not_found', `client '${clientId}' not found`);
    const current = toRecord(row);
    const defined = Object.fromEntries(
      Object.entries(changes).filter(([, value]) => value !== undefined),
    ) as ClientChanges;
    const next: ClientInput = {
      clientId,
      name: current.name ?? undefined,
      redirectUris: current.redirectUris,
      postLogoutRedirectUris: current.postLogoutRedirectUris,
      backchannelLogoutUri: current.backchannelLogoutUri ?? undefined,
      isPublic: changes.clientSecret === undefined ? current.isPublic : false,
      require2fa: current.require2fa,
      consent: current.consent,
      ...defined,
    };
    validate(next);
    let secretCiphertext: string | null = null;
    if (next.clientSecret !== undefined) {
      secretCiphertext = this.#encryptor.encrypt(next.clientSecret, secretContext(clientId));
    } else if (!next.isPublic) {
      secretCiphertext = row.secret_ciphertext;
      if (secretCiphertext === null) {
        throw new AppError(
          'invalid_input',
          'a public client becomes confidential only with a new secret: add --client-secret-stdin',
        );
      }
    }
    const updated = await this.#db.query<ClientRow>(
      `UPDATE clients SET name = $2, metadata = $3, secret_ciphertext = $4, require_2fa = $5,
         consent = $6, updated_at = now()
       WHERE client_id = $1 RETURNING *`,
      [
        clientId,
        next.name ?? null,
        JSON.stringify(toMetadata(next)),
        secretCiphertext,
        next.require2fa ?? false,
        next.consent ?? false,
      ],
    );
    if (!updated[0]) throw new AppError('not_found', `client '${clientId}' not found`);

    return toRecord(updated[0]);
  }

  async list(): Promise<ClientRecord[]> {
    const rows = await this.#db.query<ClientRow>('SELECT * FROM clients ORDER BY client_id');

    return rows.map(toRecord);
  }

  async get(clientId: string): Promise<ClientRecord | undefined> {
    const rows = await this.#db.query<ClientRow>('SELECT * FROM clients WHERE client_id = $1', [
      clientId,
    ]);

    return rows[0] && toRecord(rows[0]);
  }

  async delete(clientId: string): Promise<void> {
    const rows = await this.#db.query('DELETE FROM clients WHERE client_id = $1 RETURNING 1', [
      clientId,
    ]);
    if (rows.length === 0) throw new AppError('not_found', `client '${clientId}' not found`);
  }

  /** Returns the client's metadata as oidc-provider expects it, secret decrypted. */
  async findMetadata(clientId: string): Promise<Record<string, unknown> | undefined> {
    if (!CLIENT_ID_PATTERN.test(clientId)) return undefined;
    const rows = await this.#db.query<ClientRow>('SELECT * FROM clients WHERE client_id = $1', [
      clientId,
    ]);
    const row = rows[0];
    if (!row) return undefined;

    return {
      ...row.metadata,
      client_id: row.client_id,
      ...(row.secret_ciphertext
        ? {
            client_secret: this.#encryptor.decryptString(
              row.secret_ciphertext,
              secretContext(row.client_id),
            ),
          }
        : {}),
      idp_require_2fa: row.require_2fa,
      idp_consent: row.consent,
    };
  }
}
