import type { JWK } from 'jose';
import type { Database } from '../db/database.ts';
import type { RedisClient } from '../db/redis.ts';
import type { Logger } from '../logger.ts';
import type { Encryptor } from '../security/encryption.ts';
import { isUnavailableError } from '../server/outages.ts';
import { advanceSigningKeys, loadSigningKeys } from './keys.ts';

/** Maximum time between two reloads of the signing keys from Postgres, in seconds. */
export const KEY_RELOAD_SECONDS = 60;

/** Returns the Redis channel on which `idp keys rotate` notifies every node to reload. */
export const keysChannel = (prefix: string) => `${prefix}signing-keys`;

/** Notifies running nodes that the signing keys changed. */
export async function announceKeyChange(redis: RedisClient, prefix: string): Promise<void> {
  await redis.publish(keysChannel(prefix), 'changed');
}

export interface KeyringOptions {
  database: Database;
  encryptor: Encryptor;
  logger: Logger;
  /** How long a retired key stays published: the longest a token it signed can be presented. */
  retiredKeepSeconds: number;
  /** Called with the new keys whenever the published set or the signing key changes. */
  onChange: (keys: JWK[]) => void;
  /** A pub/sub connection and channel on which rotation notices arrive. */
  notices?: { subscriber: RedisClient; channel: string };
}

/**
 * Keeps a node's signing keys in step with Postgres, so that every node publishes and signs with
 * the same keys without a restart. It reloads every KEY_RELOAD_SECONDS, at the moment a next key
 * is due to start signing, and at once when a rotation notice arrives on Redis.
 */
export class SigningKeyring {
  readonly #options: KeyringOptions;
  #fingerprint = '';
  #nextActivation: Date | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(options: KeyringOptions) {
    this.#options = options;
  }

  /** Applies the schedule and loads the keys to start with. */
  async start(): Promise<JWK[]> {
    const { database, encryptor, retiredKeepSeconds } = this.#options;
    await advanceSigningKeys(database, retiredKeepSeconds);
    const loaded = await loadSigningKeys(database, encryptor);
    this.#fingerprint = loaded.fingerprint;
    this.#nextActivation = loaded.nextActivation;

    return loaded.keys;
  }

  /** Starts reloading on the timer and on notices; onChange may be called from now on. */
  async watch(): Promise<void> {
    const { notices } = this.#options;
    this.#schedule(this.#nextActivation);
    if (notices) {
      notices.subscriber.on('error', () => {});
      notices.subscriber.on('message', (channel: string) => {
        if (channel === notices.channel) void this.refresh();
      });
      await notices.subscriber.subscribe(notices.channel);
    }
  }

  /** Reloads now; calls made while a reload runs are folded into one more reload after it. */
  refresh(): Promise<void> {
    if (this.#running) {
      this.#again = true;

      return this.#running;
    }
    this.#running = this.#reload().finally(() => {
      this.#running = undefined;
      if (this.#again && !this.#stopped) {
        this.#again = false;
        void this.refresh();
      }
    });

    return this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    const subscriber = this.#options.notices?.subscriber;
    if (subscriber) await subscriber.quit().catch(() => subscriber.disconnect());
  }

  async #reload(): Promise<void> {
    const { database, encryptor, logger, retiredKeepSeconds, onChange } = this.#options;
    let nextActivation: Date | undefined;
    try {
      await advanceSigningKeys(database, retiredKeepSeconds);
      const loaded = await loadSigningKeys(database, encryptor);
      nextActivation = loaded.nextActivation;
      if (loaded.fingerprint !== this.#fingerprint && !this.#stopped) {
        this.#fingerprint = loaded.fingerprint;
        onChange(loaded.keys);
        logger.info({ keys: loaded.fingerprint }, 'signing keys reloaded');
      }
    } catch (error) {
      // An outage is logged once by the database monitor; the next reload tries again.
      if (!isUnavailableError(error)) logger.error({ err: error }, 'signing key reload failed');
    } finally {
      this.#schedule(nextActivation);
    }
  }

  #schedule(nextActivation: Date | undefined): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    let delay = KEY_RELOAD_SECONDS * 1000;
    if (nextActivation) {
      delay = Math.min(delay, Math.max(250, nextActivation.getTime() - Date.now() + 50));
    }
    this.#timer = setTimeout(() => void this.refresh(), delay);
    this.#timer.unref();
  }
}
