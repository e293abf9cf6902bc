import 'reflect-metadata';

import * as x509 from '@peculiar/x509';

const ECDSA = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const RSA = {
  name: 'RSASSA-PKCS1-v1_5',
  modulusLength: 2048,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: 'SHA-256',
} as const;

export interface PemPair {
  cert: string;
  key: string;
}

export interface CertificateOptions {
  /** DNS names and IP addresses the certificate is valid for. */
  hosts: string[];
  keyType?: 'ec' | 'rsa';
  validDays?: number;
  /** Signs with this authority; without one the certificate is self-signed. */
  issuer?: { cert: string; key: string };
  /** Makes a certificate authority instead of a server certificate. */
  isAuthority?: boolean;
  commonName?: string;
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey('pkcs8', key));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];

  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

async function importIssuerKey(pem: string, cert: x509.X509Certificate): Promise<CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const algorithm = cert.publicKey.algorithm as Algorithm & { namedCurve?: string };
  const params = algorithm.name === 'ECDSA' ? ECDSA : RSA;

  return crypto.subtle.importKey('pkcs8', der, params, true, ['sign']);
}

function subjectAltNames(hosts: string[]): x509.JsonGeneralName[] {
  return hosts.map((host) =>
    /^[\d.]+$/.test(host) || host.includes(':')
      ? { type: 'ip', value: host }
      : { type: 'dns', value: host },
  );
}

/** Creates an X.509 certificate and its private key in PEM, for a server or a test authority. */
export async function createCertificate(options: CertificateOptions): Promise<PemPair> {
  const algorithm = options.keyType === 'rsa' ? RSA : ECDSA;
  const keys = (await crypto.subtle.generateKey(algorithm, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + (options.validDays ?? 365) * 86_400_000);
  const name = `CN=${options.commonName ?? options.hosts[0] ?? 'idp'}`;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(options.isAuthority === true, undefined, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (options.isAuthority) {
    extensions.push(
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
    );
  } else {
    extensions.push(
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(subjectAltNames(options.hosts)),
    );
  }
  const serialNumber = Buffer.from(crypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');

  let cert: x509.X509Certificate;
  if (options.issuer) {
    const issuerCert = new x509.X509Certificate(options.issuer.cert);
    const issuerKey = await importIssuerKey(options.issuer.key, issuerCert);
    const issuerAlgorithm = issuerCert.publicKey.algorithm.name === 'ECDSA' ? ECDSA : RSA;
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuerCert));
    cert = await x509.X509CertificateGenerator.create({
      serialNumber,
      subject: name,
      issuer: issuerCert.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: issuerKey,
      signingAlgorithm: issuerAlgorithm,
      extensions,
    });
  } else {
    cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber,
      name,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: algorithm,
      extensions,
    });
  }

  return { cert: `${cert.toString('pem').trimEnd()}\n`, key: await exportKeyPem(keys.privateKey) };
}
