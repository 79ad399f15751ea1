import type { Context, MiddlewareHandler } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { HearthError } from '@hearth/core';
import type { ApiKeyInfo, ApiKeyStore } from './api-keys.ts';
import { adminKeyPath } from './admin-key.ts';
import type { FunctionStore } from '../function-store.ts';

const API_KEY_VAR = 'hearthApiKey';

/** The key a request was let in with (set by requireKey). */
export const requestKey = (c: Context): ApiKeyInfo | undefined => c.get(API_KEY_VAR) as ApiKeyInfo | undefined;

function unauthenticated(c: Context, message: string): Response {
  const err = new HearthError('UNAUTHENTICATED', message);
  return c.json(err.toJSON(), 401, { 'WWW-Authenticate': 'Bearer realm="hearth"' });
}

/** `Authorization: Bearer <key>`; undefined when there is none. */
function bearer(c: Context): string | undefined {
  const header = c.req.header('authorization');
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : '';
}

async function check(c: Context, keys: ApiKeyStore, home: string): Promise<Response | undefined> {
  const key = bearer(c);
  if (key === undefined) {
    return unauthenticated(c, `missing API key: send Authorization: Bearer <key>; create one with \`hearth keys create\` (the local admin key is in ${adminKeyPath(home)})`);
  }
  // The message never echoes what was sent: it may be a real key with a typo.
  const info = key ? await keys.verify(key) : undefined;
  if (!info) return unauthenticated(c, 'invalid API key: it is unknown or revoked (`hearth keys ls` lists keys; `hearth keys create` makes one)');
  c.set(API_KEY_VAR, info);
  return undefined;
}

/** Lets a request through only with a live API key: the management API, calls and queues. */
export function requireKey(keys: ApiKeyStore, home: string): MiddlewareHandler {
  return async (c, next) => {
    const denied = await check(c, keys, home);
    if (denied) return denied;
    await next();
  };
}

/**
 * For `/function/:name` and `/async-function/:name` (mount on `…/:name/*`): public functions pass; a function whose
 * current spec says `auth: key` needs a key like the management API. An unknown function
 * passes too, so the route answers its usual 404. A public function gets the caller's
 * Authorization header as it came: it is the function's own business.
 */
export function requireKeyForPrivateFunctions(keys: ApiKeyStore, home: string, functions: FunctionStore): MiddlewareHandler {
  return async (c, next) => {
    // The same param the route reads, so both agree on which function this is.
    const name = c.req.param('name');
    const fn = name ? await functions.get(name) : undefined;
    if (fn?.spec.auth === 'key') {
      const denied = await check(c, keys, home);
      if (denied) return denied;
      // The key was Hearth's, not the function's: it must not reach the handler (which may
      // log headers) nor be stored with an async call's payload.
      const headers = new Headers(c.req.raw.headers);
      headers.delete('authorization');
      c.req.raw = new Request(c.req.raw, { headers });
    }
    await next();
  };
}

const isLoopback = (address: string | undefined): boolean =>
  !!address && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));

/**
 * For `/metrics`: a scraper on this machine needs no key (Prometheus next to the gateway,
 * `curl localhost:8080/metrics`); from anywhere else it takes a key like the management API.
 */
export function requireKeyUnlessLoopback(keys: ApiKeyStore, home: string): MiddlewareHandler {
  return async (c, next) => {
    let address: string | undefined;
    try {
      address = getConnInfo(c).remote.address;
    } catch {
      // Not served by @hono/node-server (app.request in a test): no peer to trust.
    }
    if (!isLoopback(address)) {
      const denied = await check(c, keys, home);
      if (denied) return denied;
    }
    await next();
  };
}
