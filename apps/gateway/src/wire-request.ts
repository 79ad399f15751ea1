import type { Context } from 'hono';
import type { WireRequest } from '@hearth/core';

/** Headers that describe one hop of a connection, not the message; never forwarded. */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'content-length']);

/** The request as the function sees it: method, the path after `mountPath`, query, headers, body. */
export async function toWireRequest(c: Context, mountPath: string): Promise<WireRequest> {
  const url = new URL(c.req.url);
  const rest = url.pathname.slice(mountPath.length);
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
