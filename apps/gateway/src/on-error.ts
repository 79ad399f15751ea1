import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { HearthError, isHearthError } from '@hearth/core';

/** The one place where errors become HTTP responses. */
export function onError(err: Error, c: Context): Response {
  if (isHearthError(err)) {
    // The unread rest of a too-large body would be parsed as the next request: close instead.
    if (err.code === 'TOO_LARGE') c.header('Connection', 'close');
    return c.json(err.toJSON(), err.status as 400);
  }
  if (err instanceof HTTPException) {
    const code = err.status === 413 ? 'TOO_LARGE' : err.status === 404 ? 'NOT_FOUND' : 'INVALID_ARGUMENT';
    return c.json({ error: err.message || 'bad request', code }, err.status);
  }
  const down = unreachableService(err);
  if (down) {
    const e = new HearthError('UNAVAILABLE', down);
    return c.json(e.toJSON(), 503);
  }
  // The message may hold internals (a SQL statement, a path): the log gets it, the client does not.
  console.error('[gateway] unexpected error', err);
  return c.json({ error: 'internal error; the gateway log has the details', code: 'INTERNAL' }, 500);
}

export function notFoundRoute(c: Context): Response {
  const err = new HearthError('NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`);
  return c.json(err.toJSON(), 404);
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'EPIPE', '57P01', '57P02', '57P03']);

/** A database (or other service) that cannot be reached, found anywhere in the cause chain: a 503, not a 500. */
function unreachableService(err: unknown): string | undefined {
  let database = false;
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = String((e as { code?: unknown }).code ?? '');
    const message = String((e as { message?: unknown }).message ?? '');
    if ((e as { name?: unknown }).name === 'DrizzleQueryError') database = true;
    if (CONNECTION_CODES.has(code) || code.startsWith('08') || /Connection terminated|connect ECONNREFUSED/.test(message)) {
      // The gateway's Redis calls map their own errors (UNAVAILABLE naming Redis): what
      // arrives here unmapped comes from the database client.
      const what = database || code.startsWith('08') || code.startsWith('57P') ? 'the database (Postgres)' : 'the database (Postgres) or another service Hearth needs';
      return `${what} is not reachable (${code || message.split('\n')[0]}); try again shortly`;
    }
  }
  return undefined;
}
