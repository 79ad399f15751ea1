import { randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { errorFromJson } from '@hearth/core';
import type { AppDeps } from '../deps.ts';
import { limitBody } from '../body-limit.ts';
import { HOP_BY_HOP, toWireRequest } from '../wire-request.ts';
import { traceGatewayInvoke } from '../tracing.ts';

/** `ANY /function/:name[/*]`: a synchronous call; the answer is the function's own. */
export function invokeRoutes(deps: AppDeps): Hono {
  const app = new Hono();
  app.use('*', limitBody(deps.config.bodyLimitBytes));
  const handle = async (c: Context) => {
    const name = c.req.param('name')!;
    const fn = await deps.functions.require(name);
    const request = await toWireRequest(c, `/function/${name}`);
    const callId = randomUUID();
    const result = await traceGatewayInvoke({ fn, callId, callerTraceparent: c.req.header('traceparent'), mode: 'sync' }, (traceparent) =>
      deps.router.queueFor(fn).then((queue) => deps.invoker.invokeSync(fn, request, traceparent, callId, queue)),
    );
    c.header('X-Call-Id', result.callId);
    c.header('X-Duration-Seconds', (result.durationMs / 1000).toFixed(3));
    c.header('X-Hearth-Start', result.start ?? (result.cold ? 'cold' : 'warm'));
    if (result.instanceId) c.header('X-Hearth-Instance', result.instanceId);
    if (result.error) throw errorFromJson({ code: result.error.code, error: result.error.message });
    const headers = new Headers();
    for (const [key, value] of Object.entries(result.headers)) {
      if (!HOP_BY_HOP.has(key.toLowerCase())) headers.set(key, value);
    }
    c.res.headers.forEach((value, key) => headers.set(key, value));
    const body = Buffer.from(result.bodyBase64, 'base64');
    const noBody = c.req.method === 'HEAD' || result.status === 204 || result.status === 304;
    return new Response(noBody ? null : body, { status: result.status, headers });
  };
  app.all('/:name', handle);
  app.all('/:name/*', handle);
  return app;
}
