interface Entry<T> {
  expires: number;
  value: Promise<T | undefined>;
}

/**
 * Keeps values read from Postgres for a few seconds, so that a lookup made by every token request
 * does not cost a query each time. Concurrent lookups of one key share one read. Only found values
 * stay: a row created a moment after a miss is seen at once, and a failed read is retried by the
 * next lookup. When full, the oldest entry goes first.
 */
export class ShortCache<T> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #seconds: number;
  readonly #size: number;
  readonly #now: () => number;

  constructor(options: { seconds: number; size: number; now?: () => number }) {
    this.#seconds = options.seconds;
    this.#size = options.size;
    this.#now = options.now ?? Date.now;
  }

  /** Returns the kept value of `key`, or reads it with `load` and keeps it if found. */
  get(key: string, load: () => Promise<T | undefined>): Promise<T | undefined> {
    const now = this.#now();
    const kept = this.#entries.get(key);
    if (kept && kept.expires > now) return kept.value;

    const entry = { expires: now + this.#seconds * 1000, value: load() };
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    if (this.#entries.size > this.#size) {
      this.#entries.delete(this.#entries.keys().next().value as string);
    }
    const drop = () => {
      if (this.#entries.get(key) === entry) this.#entries.delete(key);
    };
    entry.value.then((found) => {
      if (found === undefined) drop();
    }, drop);

    return entry.value;
  }
}
