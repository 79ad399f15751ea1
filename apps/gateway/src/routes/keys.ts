import { Hono } from 'hono';
import { HearthError } from '@hearth/core';
import type { ApiKeyInfo, ApiKeyStore } from '../auth/api-keys.ts';
import { requestKey } from '../auth/require-key.ts';

export const keyInfo = (k: ApiKeyInfo) => ({
  id: k.id,
  name: k.name,
  prefix: k.prefix,
  role: k.role,
  createdAt: k.createdAt.toISOString(),
  lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
  revokedAt: k.revokedAt?.toISOString() ?? null,
});

/** `/system/keys`: create (the plain key is in this one answer only), list, revoke; `/system/whoami`. */
export function keyRoutes(keys: ApiKeyStore): Hono {
  const app = new Hono();

  app.get('/', async (c) => c.json((await keys.list()).map(keyInfo)));

  app.post('/', async (c) => {
    const text = await c.req.text();
    let body: { name?: unknown } = {};
    if (text.trim() !== '') {
      try {
        body = JSON.parse(text) as { name?: unknown };
      } catch {
        throw new HearthError('INVALID_ARGUMENT', 'request body must be JSON: { "name": "ci" }');
      }
    }
    if (body.name !== undefined && typeof body.name !== 'string') throw new HearthError('INVALID_ARGUMENT', 'name must be a string');
    const { key, info } = await keys.create(body.name ?? 'unnamed');
    return c.json({ ...keyInfo(info), key }, 201);
  });

  app.delete('/:id', async (c) => c.json(keyInfo(await keys.revoke(c.req.param('id')))));

  return app;
}

/** `GET /system/whoami`: the key the request came with; `hearth login` checks a key with it. */
export function whoamiRoute(): Hono {
  const app = new Hono();
  app.get('/', (c) => {
    const key = requestKey(c);
    if (!key) throw new HearthError('UNAUTHENTICATED', 'no API key on this request');
    return c.json(keyInfo(key));
  });
  return app;
}
