import QRCode from 'qrcode';
import type { Encryptor } from '../security/encryption.ts';
import { base32Encode, groupKey, otpauthUri } from './totp.ts';

/** The QR code and the same key for manual entry, as the enrolment page shows them. */
export interface EnrolmentView {
  /** A `data:image/png` URL of the QR code of the otpauth URI, rendered on the server. */
  qrCode: string;
  /** The base32 key in groups of four. */
  key: string;
  issuer: string;
  username: string;
}

export async function enrolmentView(
  issuer: string,
  username: string,
  secret: Buffer,
): Promise<EnrolmentView> {
  const uri = otpauthUri({ issuer, username, secret });
  const qrCode = await QRCode.toDataURL(uri, { errorCorrectionLevel: 'M', margin: 2, scale: 5 });

  return { qrCode, key: groupKey(base32Encode(secret)), issuer, username };
}

// A secret waiting for its confirmation code is kept in the short-lived store, encrypted too.
const pendingContext = (accountId: string) => `totp-enrolment:${accountId}`;

export function sealPendingSecret(encryptor: Encryptor, accountId: string, secret: Buffer): string {
  return encryptor.encrypt(secret, pendingContext(accountId));
}

export function openPendingSecret(encryptor: Encryptor, accountId: string, sealed: string): Buffer {
  return encryptor.decrypt(sealed, pendingContext(accountId));
}
