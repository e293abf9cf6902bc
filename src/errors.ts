import { en, type MessageKey } from './views/messages/en.ts';

export type AppErrorCode =
  | 'invalid_input'
  | 'not_found'
  | 'conflict'
  | 'invalid_credentials'
  | 'interaction_expired'
  | 'forbidden'
  | 'payload_too_large'
  | 'unavailable';

const statusByCode: Record<AppErrorCode, number> = {
  invalid_input: 400,
  not_found: 404,
  conflict: 409,
  invalid_credentials: 401,
  interaction_expired: 400,
  forbidden: 403,
  payload_too_large: 413,
  unavailable: 503,
};

/**
 * An error whose message is written for the person who caused it, so it may be shown to them.
 * Any other error is logged, and the response carries a generic message.
 */
export class AppError extends Error {
  readonly code: AppErrorCode;
  readonly status: number;
  readonly expose = true;
  /** The catalogue text that a web page shows in the reader's language instead of `message`. */
  readonly messageKey?: MessageKey;

  constructor(
    code: AppErrorCode,
    message: string,
    options?: { cause?: unknown; messageKey?: MessageKey },
  ) {
    super(message, options);
    this.name = 'AppError';
    this.code = code;
    this.status = statusByCode[code];
    this.messageKey = options?.messageKey;
  }
}

/** An error for a web page, whose text comes from the message catalogues (English in logs). */
export function pageError(
  code: AppErrorCode,
  messageKey: MessageKey,
  options: { cause?: unknown } = {},
): AppError {
  return new AppError(code, en[messageKey], { ...options, messageKey });
}
