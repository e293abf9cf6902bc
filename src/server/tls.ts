import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import path from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { createCertificate, type PemPair } from './certificates.ts';

export const MIN_TLS_VERSION = 'TLSv1.2';

/** Reads a PEM certificate chain and key and checks that node's TLS accepts them as a pair. */
export function loadTlsFiles(
  certFile: string,
  keyFile: string,
): PemPair & { context: SecureContext } {
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new Error(`cannot read the TLS ${what} '${file}' (${reason})`, { cause: error });
    }
  };
  const cert = read(certFile, 'certificate');
  const key = read(keyFile, 'key');
  try {
    const context = createSecureContext({ cert, key, minVersion: MIN_TLS_VERSION });
    // OpenSSL checks that a key matches the certificate only when both are of one type, so an RSA
    // certificate with an EC key loads here and then fails every handshake.
    if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) {
      throw new Error('the key does not belong to the certificate');
    }

    return { cert, key, context };
  } catch (error) {
    throw new Error(
      `the TLS certificate '${certFile}' and key '${keyFile}' are not a usable pair: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/**
 * Returns the paths of the self-signed localhost certificate in the data folder, creating it on
 * first use. `created` says whether it was made now.
 */
export async function ensureSelfSignedCertificate(
  dataDir: string,
  hostname: string,
): Promise<{ certFile: string; keyFile: string; created: boolean }> {
  const dir = path.join(dataDir, 'tls');
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) return { certFile, keyFile, created: false };

  const hosts = [...new Set([hostname, 'localhost', '127.0.0.1', '::1'])];
  const pair = await createCertificate({ hosts, validDays: 825 });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(keyFile, pair.key, { mode: 0o600 });
  writeFileSync(certFile, pair.cert, { mode: 0o644 });

  return { certFile, keyFile, created: true };
}
