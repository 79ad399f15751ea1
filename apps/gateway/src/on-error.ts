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
  // The message may hold internals (a SQL statement, a path): the log gets it, the client does not.
  console.error('[gateway] unexpected error', err);
  return c.json({ error: 'internal error; the gateway log has the details', code: 'INTERNAL' }, 500);
}

export function notFoundRoute(c: Context): Response {
  const err = new HearthError('NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`);
  return c.json(err.toJSON(), 404);
}
