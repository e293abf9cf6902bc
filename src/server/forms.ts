import { bodyParser } from '@koa/bodyparser';
import type { Context, Next } from 'koa';
import { pageError } from '../errors.ts';

/**
 * Parses url-encoded form posts of up to 16 KiB. A larger form is a 413 and anything unreadable a
 * 400, each with a plain message.
 */
export const formBody = bodyParser({
  enableTypes: ['form'],
  formLimit: '16kb',
  onError: (error) => {
    if ((error as { status?: number }).status === 413) {
      throw pageError('payload_too_large', 'error.formTooLarge');
    }
    throw pageError('invalid_input', 'error.badForm');
  },
});

/** Returns a posted text field cut to `maxLength`, or '' when it is missing or not text. */
export function formField(ctx: Context, name: string, maxLength: number): string {
  const value = (ctx.request.body as Record<string, unknown> | undefined)?.[name];

  return typeof value === 'string' ? value.slice(0, maxLength) : '';
}

/** Marks a response as not to be stored by browsers or proxies: pages with forms and secrets. */
export async function noStore(ctx: Context, next: Next): Promise<void> {
  ctx.set('cache-control', 'no-store');
  ctx.set('pragma', 'no-cache');
  await next();
}
