import { Hono } from 'hono';
import { HearthError, FUNCTION_NAME } from '@hearth/core';
import type { TraceStore } from '../trace-store.ts';

const TRACE_ID = /^[0-9a-f]{32}$/;

const limitOf = (value: string | undefined, fallback: number, max: number): number => {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new HearthError('INVALID_ARGUMENT', `limit: expected a positive integer, got "${value}"`);
  return Math.min(n, max);
};

const functionOf = (value: string | undefined): string | undefined => {
  if (value === undefined || value === '') return undefined;
  if (!FUNCTION_NAME.test(value)) throw new HearthError('INVALID_ARGUMENT', `function: "${value}" is not a function name (${FUNCTION_NAME.source})`);
  return value;
};

/**
 * `/system/traces`: the span store. `GET /?function=NAME&limit=N` the latest traces (default
 * 20, at most 200), newest first, each with its spans in waterfall order;
 * `GET /startup?function=NAME&limit=N` the median phase times by start kind over the
 * latest N traces (default 50); `GET /:traceId` one trace.
 */
export function traceRoutes(store: TraceStore): Hono {
  const app = new Hono();
  app.get('/', async (c) => {
    const functionName = functionOf(c.req.query('function'));
    const limit = limitOf(c.req.query('limit'), 20, 200);
    return c.json(await store.recent({ ...(functionName ? { functionName } : {}), limit }));
  });
  app.get('/startup', async (c) => {
    const functionName = functionOf(c.req.query('function'));
    const limit = limitOf(c.req.query('limit'), 50, 500);
    return c.json(await store.startupComparison({ ...(functionName ? { functionName } : {}), limit }));
  });
  app.get('/:traceId', async (c) => {
    const traceId = c.req.param('traceId').toLowerCase();
    if (!TRACE_ID.test(traceId)) throw new HearthError('INVALID_ARGUMENT', `"${traceId}" is not a trace id (32 hex digits)`);
    return c.json(await store.get(traceId));
  });
  return app;
}
