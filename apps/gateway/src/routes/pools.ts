import { Hono } from 'hono';
import { HearthError } from '@hearth/core';
import type { AppDeps } from '../deps.ts';
import { parseScaleChange } from '../scale-store.ts';

/**
 * `GET /system/instances[?function=NAME]`: what every worker holds (`hearth ps`).
 * `PUT /system/functions/:name/scale`: minWarm / maxInstances without a deploy (`hearth scale`).
 */
export function poolRoutes(deps: AppDeps): Hono {
  const app = new Hono();

  app.get('/instances', async (c) => {
    const only = c.req.query('function');
    const workers = await deps.workers.statuses();
    return c.json({
      workers: workers.map((w) => ({ workerId: w.workerId, at: w.at, memory: w.memory, stemCells: w.stemCells })),
      instances: workers.flatMap((w) => w.instances.filter((i) => !only || i.function === only).map((i) => ({ ...i, worker: w.workerId }))),
    });
  });

  app.put('/functions/:name/scale', async (c) => {
    const name = c.req.param('name');
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new HearthError('INVALID_ARGUMENT', 'request body must be JSON: { "minWarm": N, "maxInstances": M }');
    }
    const change = parseScaleChange(body);
    const fn = await deps.functions.get(name);
    if (!fn) throw new HearthError('NOT_FOUND', `function "${name}" not found`);
    const current = await deps.scale.get(name);
    const minWarm = change.minWarm ?? current?.minWarm ?? fn.spec.scale.minWarm;
    const maxInstances = change.maxInstances ?? current?.maxInstances ?? fn.spec.scale.maxInstances;
    if (minWarm > maxInstances) throw new HearthError('INVALID_ARGUMENT', `minWarm (${minWarm}) must not be more than maxInstances (${maxInstances})`);
    await deps.scale.set(name, change);
    await deps.jobs.announceTriggersChanged(name);
    return c.json({ name, minWarm, maxInstances });
  });

  return app;
}
