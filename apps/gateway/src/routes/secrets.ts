import { Hono } from 'hono';
import { HearthError } from '@hearth/core';
import { parseSecretValues, type SecretInfo, type SecretStore } from '../secret-store.ts';
import { limitBody } from '../body-limit.ts';

const secretInfo = (s: SecretInfo) => ({ key: s.key, updatedAt: s.updatedAt.toISOString() });

/** A PUT holds at most this: 100 secrets of 64 KiB, base64 and JSON around them. */
const SECRETS_BODY_LIMIT = 10 * 1024 * 1024;

/**
 * `/system/functions/:name/secrets`: set (merge), list names, delete one. Values go in and
 * never come out: not in answers, not in errors, not in logs.
 */
export function secretRoutes(secrets: SecretStore): Hono {
  const app = new Hono();
  app.get('/:name/secrets', async (c) => c.json((await secrets.list(c.req.param('name'))).map(secretInfo)));

  // Per route: a use('*') here would reach every /system/functions route once mounted.
  app.put('/:name/secrets', limitBody(SECRETS_BODY_LIMIT), async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      // Not the parser's message: it may quote a piece of the body.
      throw new HearthError('INVALID_ARGUMENT', 'request body must be JSON: { "KEY": "value" }');
    }
    const saved = await secrets.set(c.req.param('name'), parseSecretValues(body));
    return c.json(saved.map(secretInfo));
  });

  app.delete('/:name/secrets/:key', async (c) => {
    await secrets.delete(c.req.param('name'), c.req.param('key'));
    return c.body(null, 204);
  });

  return app;
}
