/**
 * One error model for all of Hearth. A HearthError carries a code; the gateway maps the
 * code to an HTTP status in one place (apps/gateway/src/on-error.ts) and the CLI maps it to
 * a one-line message and an exit code.
 */
export const ERROR_STATUS = {
  INVALID_ARGUMENT: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  TOO_LARGE: 413,
  FUNCTION_ERROR: 500,
  INTERNAL: 500,
  BAD_GATEWAY: 502,
  UNAVAILABLE: 503,
  TIMEOUT: 504,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class HearthError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HearthError';
    this.code = code;
    if (options.details) this.details = options.details;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  toJSON(): { error: string; code: ErrorCode; details?: Record<string, unknown> } {
    return { error: this.message, code: this.code, ...(this.details ? { details: this.details } : {}) };
  }
}

export function isHearthError(err: unknown, code?: ErrorCode): err is HearthError {
  return err instanceof HearthError && (code === undefined || err.code === code);
}

export const invalidArgument = (message: string, details?: Record<string, unknown>) =>
  new HearthError('INVALID_ARGUMENT', message, details ? { details } : {});
export const notFound = (message: string) => new HearthError('NOT_FOUND', message);
export const unavailable = (message: string, cause?: unknown) => new HearthError('UNAVAILABLE', message, { cause });

/** Turns an error payload that crossed a process boundary (JSON) back into a HearthError. */
export function errorFromJson(value: { code?: string; error?: string; message?: string }): HearthError {
  const code = (value.code && value.code in ERROR_STATUS ? value.code : 'INTERNAL') as ErrorCode;
  return new HearthError(code, value.error ?? value.message ?? 'unknown error');
}
