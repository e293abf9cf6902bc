import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  generateRecoveryCode,
  hashRecoveryCode,
  normaliseRecoveryCode,
} from '../src/mfa/recovery-codes.ts';
import {
  base32Encode,
  generateSecret,
  groupKey,
  hotp,
  matchingSteps,
  normaliseTotpCode,
  otpauthUri,
  totpAt,
} from '../src/mfa/totp.ts';
import { base32Decode, referenceHotp, referenceTotp } from './support/totp.ts';

// RFC 6238 appendix B, SHA-1 rows: the key is the ASCII string "12345678901234567890".
const RFC6238_KEY = Buffer.from('12345678901234567890', 'ascii');
const RFC6238_SHA1: [number, string][] = [
  [59, '94287082'],
  [1111111109, '07081804'],
  [1111111111, '14050471'],
  [1234567890, '89005924'],
  [2000000000, '69279037'],
  [20000000000, '65353130'],
];

// RFC 4226 appendix D: HOTP values of the same key for counters 0 to 9.
const RFC4226_HOTP = [
  '755224',
  '287082',
  '359152',
  '969429',
  '338314',
  '254676',
  '287922',
  '162583',
  '399871',
  '520489',
];

describe('TOTP', () => {
  it('test helper matches RFC 6238 SHA-1 vectors', () => {
    for (const [seconds, code] of RFC6238_SHA1) {
      assert.equal(referenceTotp(RFC6238_KEY, seconds, 8), code, `T=${seconds}`);
    }
  });

  it('src matches RFC 6238 vectors (6 digits)', () => {
    for (const [seconds, code] of RFC6238_SHA1) {
      assert.equal(totpAt(RFC6238_KEY, seconds * 1000), code.slice(-6), `T=${seconds}`);
    }
  });

  it('src matches RFC 4226 HOTP vectors', () => {
    RFC4226_HOTP.forEach((code, counter) => {
      assert.equal(hotp(RFC6238_KEY, counter), code, `counter ${counter}`);
      assert.equal(referenceHotp(RFC6238_KEY, BigInt(counter)), code, `counter ${counter}`);
    });
  });

  it('src and helper agree on random secrets', () => {
    for (let i = 0; i < 50; i++) {
      const secret = generateSecret();
      const seconds = Math.floor(Math.random() * 4e9);
      assert.equal(totpAt(secret, seconds * 1000), referenceTotp(secret, seconds));
    }
  });

  it('secrets have 160 bits', () => {
    const secret = generateSecret();
    assert.equal(secret.length, 20);
    assert.notDeepEqual(generateSecret(), secret);
  });

  it('base32 matches RFC 4648 vectors', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'MY'],
      ['fo', 'MZXQ'],
      ['foo', 'MZXW6'],
      ['foob', 'MZXW6YQ'],
      ['fooba', 'MZXW6YTB'],
      ['foobar', 'MZXW6YTBOI'],
    ];
    for (const [plain, encoded] of vectors) {
      assert.equal(base32Encode(Buffer.from(plain)), encoded, plain);
    }
    const secret = generateSecret();
    assert.deepEqual(base32Decode(groupKey(base32Encode(secret))), secret);
  });

  it('key is shown in groups of four', () => {
    const key = groupKey(base32Encode(generateSecret()));
    assert.match(key, /^([A-Z2-7]{4} ){7}[A-Z2-7]{4}$/);
  });

  it('window is the previous, current and next step', () => {
    const secret = generateSecret();
    const now = 1_700_000_015_000; // the middle of a step
    const step = Math.floor(now / 30_000);
    const accepted: number[] = [];
    for (const offset of [-90, -60, -30, 0, 30, 60, 90]) {
      const code = referenceTotp(secret, now / 1000 + offset);
      if (matchingSteps(secret, code, now).length > 0) accepted.push(offset);
    }
    assert.deepEqual(accepted, [-30, 0, 30]);
    const current = referenceTotp(secret, now / 1000);
    assert.deepEqual(matchingSteps(secret, current, now), [step]);
    assert.deepEqual(matchingSteps(secret, current, now, step), [], 'at the last step');
  });

  it('codes are normalised', () => {
    assert.equal(normaliseTotpCode(' 123 456 '), '123456');
    assert.equal(normaliseTotpCode('123-456'), '123456');
    assert.equal(normaliseTotpCode('12345'), undefined);
    assert.equal(normaliseTotpCode('1234567'), undefined);
    assert.equal(normaliseTotpCode('12345a'), undefined);
    assert.equal(normaliseTotpCode('１２３４５６'), undefined, 'full-width digits');
  });

  it('otpauth URI carries issuer and username', () => {
    const secret = generateSecret();
    const uri = new URL(otpauthUri({ issuer: 'Case Co', username: 'Alice B', secret }));
    assert.equal(uri.protocol, 'otpauth:');
    assert.equal(uri.host, 'totp');
    assert.equal(decodeURIComponent(uri.pathname), '/Case Co:Alice B');
    assert.equal(uri.searchParams.get('issuer'), 'Case Co');
    assert.deepEqual(base32Decode(uri.searchParams.get('secret')!), secret);
    assert.equal(uri.searchParams.get('algorithm'), 'SHA1');
    assert.equal(uri.searchParams.get('digits'), '6');
    assert.equal(uri.searchParams.get('period'), '30');
  });
});

describe('recovery codes', () => {
  it('format is four groups of four', () => {
    const codes = new Set(Array.from({ length: 100 }, generateRecoveryCode));
    assert.equal(codes.size, 100);
    for (const code of codes) assert.match(code, /^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/);
  });

  it('typed codes are normalised', () => {
    assert.equal(normaliseRecoveryCode(' ABCD-efgh ijkl-MNOP '), 'abcdefghijklmnop');
    assert.equal(normaliseRecoveryCode('abcd-efgh-ijkl'), undefined);
    assert.equal(normaliseRecoveryCode('abcd-efgh-ijkl-mno1'), undefined);
    assert.equal(normaliseRecoveryCode('123456'), undefined);
  });

  it('hash depends on the account', () => {
    const a = hashRecoveryCode('account-a', 'abcdefghijklmnop');
    assert.notEqual(a, hashRecoveryCode('account-b', 'abcdefghijklmnop'));
    assert.equal(a, hashRecoveryCode('account-a', 'abcdefghijklmnop'));
  });
});
