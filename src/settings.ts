import type { Queryable } from './db/database.ts';
import { AppError } from './errors.ts';

/**
 * Server-wide settings that an administrator changes at run time with `idp settings set`. They
 * live in Postgres, so every node reads the same value, and nodes read them per sign-in without
 * caching.
 */
export const SETTINGS = {
  'require-2fa': {
    description: 'every user must pass a second factor (TOTP or a recovery code) to sign in',
    default: false,
  },
} as const;

export type SettingName = keyof typeof SETTINGS;

export interface SettingValue {
  name: SettingName;
  value: boolean;
  description: string;
  updatedAt: Date | null;
  updatedBy: string | null;
}

const isSettingName = (name: string): name is SettingName => Object.hasOwn(SETTINGS, name);

/** Parses `on`/`off` (also true/false, yes/no, 1/0) into a boolean. */
export function parseSwitch(name: string, text: string): boolean {
  const value = text.trim().toLowerCase();
  if (['on', 'true', 'yes', '1'].includes(value)) return true;
  if (['off', 'false', 'no', '0'].includes(value)) return false;
  throw new AppError('invalid_input', `${name} must be on or off, but it is '${text}'`);
}

export function settingName(name: string): SettingName {
  if (!isSettingName(name)) {
    throw new AppError(
      'invalid_input',
      `unknown setting '${name}'; known settings: ${Object.keys(SETTINGS).join(', ')}`,
    );
  }

  return name;
}

/** Queries of the `settings` table. */
export class SettingsStore {
  readonly #db: Queryable;

  constructor(db: Queryable) {
    this.#db = db;
  }

  async get(name: SettingName): Promise<boolean> {
    const rows = await this.#db.query<{ value: unknown }>(
      'SELECT value FROM settings WHERE name = $1',
      [name],
    );
    const value = rows[0]?.value;

    return typeof value === 'boolean' ? value : SETTINGS[name].default;
  }

  async set(name: SettingName, value: boolean, updatedBy: string): Promise<void> {
    await this.#db.query(
      `INSERT INTO settings (name, value, updated_at, updated_by) VALUES ($1, $2, now(), $3)
       ON CONFLICT (name) DO UPDATE
       SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by`,
      [name, JSON.stringify(value), updatedBy],
    );
  }

  async list(): Promise<SettingValue[]> {
    const rows = await this.#db.query<{
      name: string;
      value: unknown;
      updated_at: Date | string;
      updated_by: string | null;
    }>('SELECT name, value, updated_at, updated_by FROM settings');
    const stored = new Map(rows.map((row) => [row.name, row]));

    return (Object.keys(SETTINGS) as SettingName[]).map((name) => {
      const row = stored.get(name);

      return {
        name,
        value: typeof row?.value === 'boolean' ? row.value : SETTINGS[name].default,
        description: SETTINGS[name].description,
        updatedAt: row ? new Date(row.updated_at) : null,
        updatedBy: row?.updated_by ?? null,
      };
    });
  }
}
