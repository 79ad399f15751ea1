import type { MiddlewareHandler } from 'hono';
import cronParser from 'cron-parser';
import { HearthError, queueTriggers } from '@hearth/core';
import type { AppDeps } from './deps.ts';

interface TriggerLike {
  queue?: unknown;
  cron?: unknown;
  tz?: unknown;
}

/** Refuses triggers a worker could not honour, naming the bad one, before anything is stored. */
async function checkTriggers(deps: AppDeps, body: unknown): Promise<void> {
  const spec = (body as { spec?: { name?: unknown; triggers?: unknown } } | undefined)?.spec;
  if (!spec || !Array.isArray(spec.triggers)) return;
  const triggers = spec.triggers as TriggerLike[];
  triggers.forEach((t, i) => {
    if (typeof t?.cron !== 'string') return;
    try {
      cronParser.parseExpression(t.cron, typeof t.tz === 'string' ? { tz: t.tz } : {});
    } catch (err) {
      throw new HearthError('INVALID_ARGUMENT', `spec: triggers.${i}.cron: "${t.cron}"${typeof t.tz === 'string' ? ` (tz ${t.tz})` : ''} is not a valid cron pattern: ${(err as Error).message}`);
    }
  });
  const queues = triggers.map((t) => t?.queue).filter((q): q is string => typeof q === 'string');
  if (queues.length === 0) return;
  // One queue feeds one function: two consumers would split its jobs between them.
  for (const fn of await deps.functions.list()) {
    if (fn.name === spec.name) continue;
    const taken = queueTriggers(fn.spec).find((t) => queues.includes(t.queue));
    if (taken) throw new HearthError('CONFLICT', `queue "${taken.queue}" already triggers function "${fn.name}"; a queue can trigger one function`);
  }
}

/**
 * Wraps `/system/functions`: checks the triggers of a deploy, and after any change that
 * succeeded tells the workers to reconcile their trigger consumers and cron schedulers.
 */
export function triggerGuard(deps: AppDeps): MiddlewareHandler {
  return async (c, next) => {
    const method = c.req.method;
    if (method === 'POST' || method === 'PUT') {
      // Hono caches the parsed body, so the route reads it again for free.
      const body = await c.req.json().catch(() => undefined);
      await checkTriggers(deps, body);
    }
    await next();
    if (method !== 'GET' && method !== 'HEAD' && c.res.status < 300) {
      const name = decodeURIComponent(c.req.path.split('/')[3] ?? '');
      await deps.jobs.announceTriggersChanged(name).catch((err) => console.error('[gateway] could not announce a trigger change:', (err as Error).message));
    }
  };
}
