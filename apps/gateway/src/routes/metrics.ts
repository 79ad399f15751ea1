import { Hono } from 'hono';
import type { AppDeps } from '../deps.ts';

/** `GET /metrics`: every worker's metrics summed, in Prometheus' text format. */
export function metricsRoutes(deps: AppDeps): Hono {
  const app = new Hono();
  app.get('/', async (c) => c.text(await deps.workers.metricsText(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }));
  return app;
}
