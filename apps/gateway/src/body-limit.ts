import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HearthError } from '@hearth/core';

/** Refuses a request body over `maxSize` bytes with TOO_LARGE (413), before it is read whole. */
export function limitBody(maxSize: number): MiddlewareHandler {
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new HearthError('TOO_LARGE', `request body is larger than the limit of ${maxSize} bytes`);
    },
  });
}
