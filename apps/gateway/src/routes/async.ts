import { randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { HearthError, asyncQueueFor, type AsyncJob } from '@hearth/core';
import type { AppDeps } from '../deps.ts';
import { limitBody } from '../body-limit.ts';
import { toWireRequest } from '../wire-request.ts';
import { jobFunction } from '../function-store.ts';
import { traceGatewayInvoke } from '../tracing.ts';

function callbackUrl(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new HearthError('INVALID_ARGUMENT', `X-Callback-Url "${value}" is not a URL; expected http(s)://host[:port]/path`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new HearthError('INVALID_ARGUMENT', `X-Callback-Url "${value}" must be an http or https URL`);
  }
  return url.toString();
}

/**
 * `ANY /async-function/:name[/*]`, as OpenFaaS has it: 202 at once with X-Call-Id; the call
 * runs from a queue, its outcome is kept (GET /calls/:id) and POSTed to X-Callback-Url.
 */
export function asyncRoutes(deps: AppDeps): Hono {
  const app = new Hono();
  app.use('*', limitBody(deps.config.bodyLimitBytes));
  const handle = async (c: Context) => {
    const name = c.req.param('name')!;
    const fn = await deps.functions.require(name);
    const callback = callbackUrl(c.req.header('x-callback-url'));
    const request = await toWireRequest(c, `/async-function/${name}`);
    const callId = randomUUID();
    // The trace's gateway span ends at the 202; the worker records the queue wait and the run below it.
    return traceGatewayInvoke({ fn, callId, callerTraceparent: c.req.header('traceparent'), mode: 'async' }, async (traceparent) => {
      const data: AsyncJob = {
        callId,
        function: jobFunction(fn),
        request,
        trigger: 'http',
        enqueuedAt: Date.now(),
        ...(traceparent ? { traceparent } : {}),
        ...(callback ? { callbackUrl: callback } : {}),
      };
      // The row exists before the job, so GET /calls/:id answers from the first moment.
      await deps.calls.createQueued({
        id: callId,
        kind: 'async',
        functionName: fn.name,
        version: fn.version,
        queue: asyncQueueFor(fn.spec.timeoutMs),
        jobId: callId,
        payload: data,
        ...(callback ? { callbackUrl: callback } : {}),
      });
      try {
        await deps.jobs.enqueueAsync(data);
      } catch (err) {
        await deps.calls.markFailed(callId, (err as Error).message).catch(() => {});
        throw err;
      }
      c.header('X-Call-Id', callId);
      return c.json({ callId, status: 'queued', url: `${deps.config.gatewayUrl}/calls/${callId}` }, 202);
    });
  };
  app.all('/:name', handle);
  app.all('/:name/*', handle);
  return app;
}
