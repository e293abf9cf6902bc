import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCertificate, type PemPair } from '../../src/server/certificates.ts';

export interface TestCertificates {
  dir: string;
  caCert: string;
  /** The authority's certificate and key, to sign more server certificates. */
  ca: PemPair;
  certFile: string;
  keyFile: string;
}

/**
 * Creates a test certificate authority and a localhost server certificate it signed, in a new
 * temporary folder. Clients trust `caCert`; verification is never turned off.
 */
export async function createTestCertificates(
  keyType: 'ec' | 'rsa' = 'ec',
): Promise<TestCertificates> {
  const dir = mkdtempSync(path.join(tmpdir(), 'idp-tls-'));
  const ca = await createCertificate({
    hosts: [],
    commonName: 'idp test CA',
    isAuthority: true,
    keyType,
  });
  const server = await createCertificate({
    hosts: ['localhost', '127.0.0.1'],
    keyType,
    issuer: ca,
  });
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  // The chain: server certificate first, then the authority.
  writeFileSync(certFile, server.cert + ca.cert);
  writeFileSync(keyFile, server.key, { mode: 0o600 });

  return { dir, caCert: ca.cert, ca, certFile, keyFile };
}
