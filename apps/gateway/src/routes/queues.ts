import { Hono } from 'hono';
import { HearthError, queueCallId, queueTriggers } from '@hearth/core';
import type { AppDeps } from '../deps.ts';
import { limitBody } from '../body-limit.ts';

/** `POST /queues/:queue`: adds a job to a trigger queue, as any BullMQ producer could. */
export function queueRoutes(deps: AppDeps): Hono {
  const app = new Hono();
  app.use('*', limitBody(deps.config.bodyLimitBytes));

  app.post('/:queue', async (c) => {
    const queue = c.req.param('queue');
    const functions = await deps.functions.list();
    const bound = functions.flatMap((fn) => queueTriggers(fn.spec).map((trigger) => ({ fn, trigger }))).find((b) => b.trigger.queue === queue);
    // A job on a queue nobody consumes would wait forever; a typo should say so now.
    if (!bound) throw new HearthError('NOT_FOUND', `no function is triggered by queue "${queue}"; add "triggers: [{ queue: ${queue} }]" to a hearth.yaml and deploy it`);

    const text = await c.req.text();
    let data: unknown = {};
    if (text.trim() !== '') {
      try {
        data = JSON.parse(text);
      } catch {
        throw new HearthError('INVALID_ARGUMENT', 'request body must be JSON: it becomes the job data');
      }
    }
    const jobId = c.req.query('jobId') ?? c.req.header('x-job-id');
    if (jobId !== undefined && (jobId === '' || `${Number.parseInt(jobId, 10)}` === jobId || jobId.includes(':'))) {
      throw new HearthError('INVALID_ARGUMENT', `job id "${jobId}" must be non-empty, not an integer and without ":" (BullMQ's rules for custom ids)`);
    }
    const delayRaw = c.req.query('delay');
    const delayMs = delayRaw === undefined ? 0 : Number(delayRaw);
    if (!Number.isInteger(delayMs) || delayMs < 0) throw new HearthError('INVALID_ARGUMENT', `delay "${delayRaw}" must be a whole number of milliseconds`);

    const added = await deps.jobs.addToTriggerQueue(bound.trigger, {
      name: c.req.query('name') ?? 'job',
      data,
      ...(jobId ? { jobId } : {}),
      ...(delayMs ? { delayMs } : {}),
    });
    const body = { queue, jobId: added.jobId, callId: queueCallId(queue, added.jobId), function: bound.fn.name, duplicate: added.duplicate };
    return c.json(body, added.duplicate ? 200 : 202);
  });

  return app;
}
