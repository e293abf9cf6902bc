import { randomUUID } from 'node:crypto';
import type { Queryable } from '../db/database.ts';
import { AppError } from '../errors.ts';
import { hashPassword, passwordProblem } from './password.ts';
import { canonicalUsername, usernameProblem } from './username.ts';

export interface Account {
  id: string;
  username: string;
  email: string | null;
  name: string | null;
  passwordHash: string;
  disabled: boolean;
  createdAt: Date;
  passwordChangedAt: Date;
}

interface AccountRow {
  id: string;
  username: string;
  email: string | null;
  name: string | null;
  password_hash: string;
  disabled: boolean;
  created_at: Date | string;
  password_changed_at: Date | string;
}

const columns =
  'id, username, email, name, password_hash, disabled, created_at, password_changed_at';

function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    username: row.username,
    email: row.email,
    name: row.name,
    passwordHash: row.password_hash,
    disabled: row.disabled,
    createdAt: new Date(row.created_at),
    passwordChangedAt: new Date(row.password_changed_at),
  };
}

const CONTROL_CHARACTERS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const EMAIL_PATTERN = /^[^\s@\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+@[^\s@\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+$/u;

/** Queries of the `accounts` table. */
export class AccountStore {
  readonly #db: Queryable;

  constructor(db: Queryable) {
    this.#db = db;
  }

  async create(input: {
    username: string;
    password: string;
    email?: string;
    name?: string;
  }): Promise<Account> {
    const problem = usernameProblem(input.username) ?? passwordProblem(input.password);
    if (problem) throw new AppError('invalid_input', problem);
    if (input.name !== undefined && CONTROL_CHARACTERS.test(input.name)) {
      throw new AppError('invalid_input', 'name must not contain control or formatting characters');
    }
    if (input.email !== undefined && !EMAIL_PATTERN.test(input.email)) {
      throw new AppError('invalid_input', `email '${input.email}' is not a valid address`);
    }
    const passwordHash = await hashPassword(input.password);
    try {
      const rows = await this.#db.query<AccountRow>(
        `INSERT INTO accounts (id, username, username_canonical, email, name, password_hash)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${columns}`,
        [
          randomUUID(),
          input.username.trim(),
          canonicalUsername(input.username),
          input.email ?? null,
          input.name?.trim() || null,
          passwordHash,
        ],
      );

      return toAccount(rows[0] as AccountRow);
    } catch (error) {
      if ((error as { code?: string }).code === '23505') {
        throw new AppError('conflict', `user '${input.username.trim()}' already exists`);
      }
      throw error;
    }
  }

  async findByUsername(username: string): Promise<Account | undefined> {
    // Usernames never contain control characters, and Postgres rejects a NUL in a query parameter.
    if (/\p{Cc}/u.test(username)) return undefined;
    const rows = await this.#db.query<AccountRow>(
      `SELECT ${columns} FROM accounts WHERE username_canonical = $1`,
      [canonicalUsername(username)],
      'account-by-username',
    );

    return rows[0] && toAccount(rows[0]);
  }

  async findById(id: string): Promise<Account | undefined> {
    if (!/^[0-9a-f-]{36}$/i.test(id)) return undefined;
    // Runs on every token and userinfo request, so it is prepared.
    const rows = await this.#db.query<AccountRow>(
      `SELECT ${columns} FROM accounts WHERE id = $1`,
      [id],
      'account-by-id',
    );

    return rows[0] && toAccount(rows[0]);
  }

  /** Finds an account by username, throwing a not_found AppError when there is none. */
  async get(username: string): Promise<Account> {
    const account = await this.findByUsername(username);
    if (!account) throw new AppError('not_found', `user '${username.trim()}' not found`);

    return account;
  }

  async list(): Promise<Account[]> {
    const rows = await this.#db.query<AccountRow>(
      `SELECT ${columns} FROM accounts ORDER BY username_canonical`,
    );

    return rows.map(toAccount);
  }

  async setPassword(id: string, password: string): Promise<void> {
    const problem = passwordProblem(password);
    if (problem) throw new AppError('invalid_input', problem);
    await this.#db.query(
      `UPDATE accounts SET password_hash = $2, password_changed_at = now(), updated_at = now()
       WHERE id = $1`,
      [id, await hashPassword(password)],
    );
  }

  /**
   * Replaces a hash by one with today's parameters, keeping the password. Only the hash that was
   * verified is replaced, so a password changed in the meantime is not overwritten.
   */
  async replaceHash(id: string, oldHash: string, newHash: string): Promise<void> {
    await this.#db.query(
      'UPDATE accounts SET password_hash = $3, updated_at = now() WHERE id = $1 AND password_hash = $2',
      [id, oldHash, newHash],
    );
  }

  async setDisabled(id: string, disabled: boolean): Promise<void> {
    await this.#db.query('UPDATE accounts SET disabled = $2, updated_at = now() WHERE id = $1', [
      id,
      disabled,
    ]);
  }
}
