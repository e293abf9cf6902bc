import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import jsQRModule from 'jsqr';
import { PNG } from 'pngjs';

// jsqr is CommonJS with a `default` export; Node hands over the function itself, while
// TypeScript types the import as the module, hence the cast.
const jsQR = jsQRModule as unknown as typeof jsQRModule.default;

// An RFC 4226 / RFC 6238 implementation of the tests' own, written apart from src/mfa/totp.ts so
// that a shared mistake cannot make both agree. It is checked against the RFC 6238 vectors.

/** Decodes RFC 4648 base32 (any case, spaces and padding ignored). */
export function base32Decode(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = text.toUpperCase().replace(/[\s=]/g, '');
  const bits = [...clean]
    .map((char) => {
      const index = alphabet.indexOf(char);
      if (index < 0) throw new Error(`not base32: ${char}`);

      return index.toString(2).padStart(5, '0');
    })
    .join('');
  const bytes: number[] = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));

  return Buffer.from(bytes);
}

/** HOTP per RFC 4226 section 5.3, with the counter as eight big-endian bytes. */
export function referenceHotp(key: Buffer, counter: bigint, digits = 6): string {
  const message = new Uint8Array(8);
  let rest = counter;
  for (let i = 7; i >= 0; i--) {
    message[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  const hs = createHmac('sha1', key).update(message).digest();
  const offset = hs[19]! & 0xf;
  const sbits =
    (hs[offset]! & 0x7f) * 2 ** 24 +
    hs[offset + 1]! * 2 ** 16 +
    hs[offset + 2]! * 2 ** 8 +
    hs[offset + 3]!;

  return (sbits % 10 ** digits).toString().padStart(digits, '0');
}

/** TOTP per RFC 6238: T = floor(unix seconds / 30). */
export function referenceTotp(key: Buffer, unixSeconds: number, digits = 6): string {
  return referenceHotp(key, BigInt(Math.floor(unixSeconds / 30)), digits);
}

export const stepOf = (unixSeconds: number) => Math.floor(unixSeconds / 30);
export const nowSeconds = () => Date.now() / 1000;

/**
 * Hands out codes of one authenticator the way a person would use them: each sign-in uses a code
 * of a later time step than the one before, since idp accepts a step once only. Uses the next
 * step (one step of drift is accepted) and waits for the clock when both are used up.
 */
export class Authenticator {
  readonly key: Buffer;
  #lastStep = -1;

  constructor(key: Buffer) {
    this.key = key;
  }

  /** The time step of the last code handed out. */
  get lastStep(): number {
    return this.#lastStep;
  }

  /** Marks every step up to `step` as used, for an authenticator enrolled with that step. */
  used(step: number): void {
    this.#lastStep = Math.max(this.#lastStep, step);
  }

  async nextCode(): Promise<string> {
    for (;;) {
      const now = nowSeconds();
      const current = stepOf(now);
      // Keep a second's margin from the window's edges, so the server computes the same step.
      const secondsIntoStep = now - current * 30;
      const candidates = secondsIntoStep > 29 ? [current + 1] : [current, current + 1];
      const step = candidates.find((candidate) => candidate > this.#lastStep);
      if (step !== undefined) {
        this.#lastStep = step;

        return referenceHotp(this.key, BigInt(step));
      }
      await sleep((30 - secondsIntoStep) * 1000 + 200);
    }
  }
}

/** Reads the QR code of a `data:image/png;base64,...` URL and returns its text. */
export function decodeQrDataUrl(dataUrl: string): string {
  const match = /^data:image\/png;base64,(.+)$/.exec(dataUrl);
  if (!match) throw new Error(`not a PNG data URL: ${dataUrl.slice(0, 40)}`);
  const png = PNG.sync.read(Buffer.from(match[1]!, 'base64'));
  const result = jsQR(new Uint8ClampedArray(png.data), png.width, png.height);
  if (!result) throw new Error('no QR code found in the image');

  return result.data;
}
