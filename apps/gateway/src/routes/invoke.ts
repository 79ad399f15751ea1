import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HearthError, errorFromJson, type WireRequest } from '@hearth/core';
import type { AppDeps } from '../deps.ts';

/** Headers that describe one hop of a connection, not the message; never forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'content-length']);

async function toWireRequest(c: Context, name: string): Promise<WireRequest> {
  const url = new URL(c.req.url);
  const prefix = `/function/${name}`;
  const rest = url.pathname.slice(prefix.length);
  const headers: Record<string, string> = {};
  c.req.raw.headers.forEach((value, key) => {
    if (!HOP_BY_HOP.has(key)) headers[key] = value;
  });
  const method = c.req.method;
  const body = method === 'GET' || method === 'HEAD' ? Buffer.alloc(0) : Buffer.from(await c.req.arrayBuffer());
  return {
    method,
    path: rest.startsWith('/') ? rest : `/${rest}`,
    query: url.search.replace(/^\?/, ''),
    headers,
    bodyBase64: body.toString('base64'),
  };
}

/** `ANY /function/:name[/*]`: a synchronous call; the answer is the function's own. */
export function invokeRoutes(deps: AppDeps): Hono {
  const app = new Hono();
  app.use(
    '*',
    bodyLimit({
      maxSize: deps.config.bodyLimitBytes,
      onError: () => {
        throw new HearthError('TOO_LARGE', `request body is larger than the limit of ${deps.config.bodyLimitBytes} bytes`);
      },
    }),
  );
  const handle = async (c: Context) => {
    const name = c.req.param('name')!;
    const fn = await deps.functions.require(name);
    const request = await toWireRequest(c, name);
    const result = await deps.invoker.invokeSync(fn, request, c.req.header('traceparent'));
    c.header('X-Call-Id', result.callId);
    c.header('X-Duration-Seconds', (result.durationMs / 1000).toFixed(3));
    c.header('X-Hearth-Start', result.cold ? 'cold' : 'warm');
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
