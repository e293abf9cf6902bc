import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/**
 * Encrypts values at rest with AES-256-GCM. Each ciphertext names the key that made it by a short
 * key id (a hash prefix of the key), so that keys can be rotated: the first key encrypts, every key
 * decrypts. `context` is bound as additional data, so a ciphertext cannot be moved to another use.
 */
export class Encryptor {
  readonly #keys: Map<string, Buffer>;
  readonly #currentKeyId: string;

  constructor(keys: Buffer[]) {
    if (keys.length === 0) throw new Error('at least one encryption key is required');
    this.#keys = new Map(keys.map((key) => [keyId(key), key]));
    this.#currentKeyId = keyId(keys[0] as Buffer);
  }

  get currentKeyId(): string {
    return this.#currentKeyId;
  }

  encrypt(plaintext: string | Buffer, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#keys.get(this.#currentKeyId) as Buffer, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);

    return ['v1', this.#currentKeyId, iv, body, cipher.getAuthTag()]
      .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
      .join('.');
  }

  decrypt(ciphertext: string, context: string): Buffer {
    const [version, id, iv, body, tag] = ciphertext.split('.');
    if (version !== 'v1' || !id || !iv || body === undefined || !tag) {
      throw new Error('stored ciphertext is malformed');
    }
    const key = this.#keys.get(id);
    if (!key) {
      throw new Error(`stored value was encrypted with key ${id}, which IDP_ENCRYPTION_KEY lacks`);
    }
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));

    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]);
  }

  decryptString(ciphertext: string, context: string): string {
    return this.decrypt(ciphertext, context).toString('utf8');
  }

  /** Returns the key id a ciphertext was made with. */
  static keyIdOf(ciphertext: string): string | undefined {
    return ciphertext.split('.')[1];
  }
}

function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('base64url').slice(0, 8);
}
