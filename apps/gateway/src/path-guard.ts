import type { MiddlewareHandler } from 'hono';
import { HearthError } from '@hearth/core';

const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Refuses a path that is not valid percent-encoding or that decodes to control characters
 * (a NUL byte among them): no name, id or sub-path Hearth knows holds one, and Postgres
 * refuses NUL in text, so such a path would otherwise surface as a 500.
 */
export const guardPath: MiddlewareHandler = async (c, next) => {
  const raw = new URL(c.req.url).pathname;
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new HearthError('INVALID_ARGUMENT', `the path ${raw.slice(0, 200)} is not valid percent-encoding`);
  }
  if (CONTROL.test(decoded)) {
    throw new HearthError('INVALID_ARGUMENT', `the path ${raw.slice(0, 200)} holds a control character (such as %00); no function name or id does`);
  }
  await next();
};
