import { Hono } from 'hono';
import { HearthError } from '@hearth/core';
import type { AppDeps } from '../deps.ts';
import type { FunctionRecord } from '../function-store.ts';

function functionInfo(fn: FunctionRecord, baseUrl: string) {
  return {
    name: fn.name,
    version: fn.version,
    image: `${fn.imageRef}@${fn.imageDigest}`,
    digest: fn.imageDigest,
    runtime: fn.spec.runtime,
    spec: fn.spec,
    url: `${baseUrl}/function/${fn.name}`,
    createdAt: fn.createdAt.toISOString(),
    updatedAt: fn.updatedAt.toISOString(),
  };
}

async function jsonBody(req: { json(): Promise<unknown> }): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await req.json();
  } catch {
    throw new HearthError('INVALID_ARGUMENT', 'request body must be JSON: { "image": "…@sha256:…", "spec": { … } }');
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new HearthError('INVALID_ARGUMENT', 'request body must be a JSON object with "image" and "spec"');
  }
  return body as Record<string, unknown>;
}

const positiveInt = (value: string | undefined, fallback: number, max: number): number => {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new HearthError('INVALID_ARGUMENT', `expected a positive integer, got "${value}"`);
  return Math.min(n, max);
};

/** `/system/functions`: list, show, create, deploy a version, delete; logs and invocations. */
export function functionRoutes(deps: AppDeps): Hono {
  const app = new Hono();
  const base = deps.config.gatewayUrl;

  app.get('/', async (c) => c.json((await deps.functions.list()).map((fn) => functionInfo(fn, base))));

  app.post('/', async (c) => {
    const body = await jsonBody(c.req);
    const { record } = await deps.functions.deploy({ image: body.image, spec: body.spec }, 'create');
    return c.json(functionInfo(record, base), 201);
  });

  app.get('/:name', async (c) => {
    const fn = await deps.functions.require(c.req.param('name'));
    const versions = await deps.functions.versions(fn.name);
    return c.json({
      ...functionInfo(fn, base),
      versions: versions.map((v) => ({
        version: v.version,
        image: `${v.imageRef}@${v.imageDigest}`,
        digest: v.imageDigest,
        createdAt: v.createdAt.toISOString(),
      })),
    });
  });

  app.put('/:name', async (c) => {
    const body = await jsonBody(c.req);
    const { record, created } = await deps.functions.deploy(
      { image: body.image, spec: body.spec, name: c.req.param('name') },
      'upsert',
    );
    return c.json(functionInfo(record, base), created ? 201 : 200);
  });

  app.delete('/:name', async (c) => {
    await deps.functions.delete(c.req.param('name'));
    return c.body(null, 204);
  });

  app.get('/:name/logs', async (c) => {
    const fn = await deps.functions.require(c.req.param('name'));
    const tail = positiveInt(c.req.query('tail'), 200, 10000);
    return c.text(await deps.logs.tail(fn.name, tail));
  });

  app.get('/:name/invocations', async (c) => {
    const fn = await deps.functions.require(c.req.param('name'));
    const limit = positiveInt(c.req.query('limit'), 20, 1000);
    const rows = await deps.functions.invocations(fn.name, limit);
    return c.json(
      rows.map((r) => ({
        id: r.id,
        version: r.version,
        trigger: r.trigger,
        status: r.status,
        httpStatus: r.httpStatus,
        cold: r.cold,
        durationMs: r.durationMs,
        error: r.error,
        createdAt: r.createdAt.toISOString(),
      })),
    );
  });

  return app;
}
