import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface EmbeddedSecrets {
  cookieKeys: string[];
  encryptionKey: Buffer;
}

/**
 * Loads the cookie and encryption keys of embedded mode from `secrets.json` in the data folder,
 * creating them (readable by the owner only) on first start.
 */
export function loadOrCreateEmbeddedSecrets(dataDir: string): EmbeddedSecrets {
  const file = path.join(dataDir, 'secrets.json');
  try {
    const stored = JSON.parse(readFileSync(file, 'utf8')) as {
      cookieKeys: string[];
      encryptionKey: string;
    };

    return {
      cookieKeys: stored.cookieKeys,
      encryptionKey: Buffer.from(stored.encryptionKey, 'base64'),
    };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
    }
  }
  const secrets = {
    cookieKeys: [randomBytes(32).toString('base64url')],
    encryptionKey: randomBytes(32).toString('base64'),
  };
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600, flag: 'wx' });

  return {
    cookieKeys: secrets.cookieKeys,
    encryptionKey: Buffer.from(secrets.encryptionKey, 'base64'),
  };
}
