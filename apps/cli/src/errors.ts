import { isHearthError, type ErrorCode } from '@hearth/core';

/**
 * Exit codes of the `hearth` command. Scripts can tell a typo (2) from a missing
 * function (3) from a stack that is down (4) from a missing or refused API key (5)
 * without parsing messages.
 */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  UNAVAILABLE: 4,
  UNAUTHENTICATED: 5,
} as const;

const EXIT_BY_CODE: Partial<Record<ErrorCode, number>> = {
  INVALID_ARGUMENT: EXIT.USAGE,
  NOT_FOUND: EXIT.NOT_FOUND,
  UNAVAILABLE: EXIT.UNAVAILABLE,
  UNAUTHENTICATED: EXIT.UNAUTHENTICATED,
  PERMISSION_DENIED: EXIT.UNAUTHENTICATED,
};

/** The exit code for an error that reached the top of a command. */
export function exitCodeFor(err: unknown): number {
  if (isHearthError(err)) return EXIT_BY_CODE[err.code] ?? EXIT.FAILURE;
  return EXIT.FAILURE;
}

/** One line, whatever the error: a stack trace helps nobody who mistyped a name. */
export function messageFor(err: unknown): string {
  const raw = err instanceof Error ? err.message : String(err);
  const line = raw.split('\n').find((l) => l.trim() !== '') ?? 'unknown error';
  return line.trim();
}

/**
 * Writes `hearth: <message>` to stderr and returns the exit code. Set HEARTH_DEBUG=1 to
 * see the stack and cause as well.
 */
export function reportError(err: unknown, stderr: NodeJS.WritableStream = process.stderr): number {
  stderr.write(`hearth: ${messageFor(err)}\n`);
  if (process.env.HEARTH_DEBUG) stderr.write(`${err instanceof Error ? (err.stack ?? '') : ''}\n${causeChain(err)}`);
  return exitCodeFor(err);
}

function causeChain(err: unknown): string {
  let out = '';
  let cause = err instanceof Error ? err.cause : undefined;
  while (cause !== undefined) {
    out += `caused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}\n`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return out;
}

/**
 * Network errors from fetch/undici hide the useful part ("ECONNREFUSED", "bad port") in
 * `cause`: the first errno-style code in the chain, else the innermost message.
 */
export function networkReason(err: unknown): string {
  let e: unknown = err;
  let innermost = messageFor(err);
  for (let i = 0; i < 5 && e; i++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    if (e instanceof Error && e.message) innermost = messageFor(e);
    e = (e as { cause?: unknown }).cause;
  }
  return innermost;
}
