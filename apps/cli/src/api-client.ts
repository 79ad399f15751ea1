import { HearthError, errorFromJson, unavailable, type FunctionSpec, type InstanceStatus, type TraceInfo } from '@hearth/core';
import { networkReason } from './errors.ts';
import type { ResolvedKey } from './credentials.ts';

/** A function as the gateway reports it (apps/gateway/API.md). */
export interface FunctionInfo {
  name: string;
  version: number;
  /** `ref@sha256:…` */
  image: string;
  digest: string;
  runtime: string;
  spec: FunctionSpec;
  /** `http://host:port/function/name` */
  url: string;
  createdAt: string;
  updatedAt: string;
}

export interface VersionInfo {
  version: number;
  image: string;
  digest: string;
  createdAt: string;
}

export interface InvocationInfo {
  id: string;
  version: number;
  trigger: string;
  status: 'succeeded' | 'failed' | 'timeout' | 'error';
  httpStatus: number | null;
  cold: boolean;
  durationMs: number | null;
  error: string | null;
  createdAt: string;
}

/** An API key as `hearth keys ls` shows it (the key itself only in KeyCreated). */
/** `GET /system/instances`: per worker, then every instance with the worker that holds it. */
export interface InstancesInfo {
  workers: { workerId: string; at: number; memory: { usedMb: number; totalMb: number }; stemCells: Record<string, { ready: number; starting: number }> }[];
  instances: (InstanceStatus & { worker: string })[];
}

export interface ApiKeyInfo {
  id: string;
  name: string;
  prefix: string;
  role: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface SecretInfo {
  key: string;
  updatedAt: string;
}

/** A secret value for `putSecrets`: text, or bytes sent as base64. */
export type SecretValue = string | { base64: string };

export interface InvokeOptions {
  method?: string;
  /** Sub-path after `/function/NAME`, may carry a query string: `/items?limit=2`. */
  path?: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Send the API key: for a function with `auth: key` (a public function would see the key). */
  withKey?: boolean;
}

/** `Authorization: Bearer <key>` when there is a key. */
export function authHeaders(auth?: ResolvedKey): Record<string, string> {
  return auth ? { authorization: `Bearer ${auth.key}` } : {};
}

const MANAGEMENT_TIMEOUT_MS = 30_000;

/**
 * A thin typed wrapper over `fetch` for the gateway API. Management calls turn error
 * responses into HearthErrors (the gateway sends `{ error, code }`); `invoke` hands back
 * the raw Response, because a function's answer is the user's, whatever its status.
 */
export class GatewayClient {
  readonly baseUrl: string;

  constructor(
    baseUrl: string,
    /** The key management calls carry; see resolveApiKey for where it comes from. */
    readonly auth?: ResolvedKey,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  /** Resolves when the gateway answers `GET /healthz`; UNAVAILABLE when it cannot be reached. */
  async health(): Promise<void> {
    await this.request('GET', '/healthz');
  }

  listFunctions(): Promise<FunctionInfo[]> {
    return this.json<FunctionInfo[]>('GET', '/system/functions');
  }

  getFunction(name: string): Promise<FunctionInfo & { versions: VersionInfo[] }> {
    return this.json('GET', `/system/functions/${encodeURIComponent(name)}`);
  }

  /** Creates the function or adds a version and makes it current. */
  putFunction(name: string, body: { image: string; spec: FunctionSpec }): Promise<FunctionInfo> {
    return this.json('PUT', `/system/functions/${encodeURIComponent(name)}`, body);
  }

  async deleteFunction(name: string): Promise<void> {
    await this.request('DELETE', `/system/functions/${encodeURIComponent(name)}`);
  }

  async logs(name: string, tail?: number): Promise<string> {
    const query = tail === undefined ? '' : `?tail=${tail}`;
    const res = await this.request('GET', `/system/functions/${encodeURIComponent(name)}/logs${query}`);
    return res.text();
  }

  invocations(name: string, limit?: number): Promise<InvocationInfo[]> {
    const query = limit === undefined ? '' : `?limit=${limit}`;
    return this.json('GET', `/system/functions/${encodeURIComponent(name)}/invocations${query}`);
  }

  createKey(name: string): Promise<ApiKeyInfo & { key: string }> {
    return this.json('POST', '/system/keys', { name });
  }

  listKeys(): Promise<ApiKeyInfo[]> {
    return this.json('GET', '/system/keys');
  }

  revokeKey(id: string): Promise<ApiKeyInfo> {
    return this.json('DELETE', `/system/keys/${encodeURIComponent(id)}`);
  }

  /** The key this client sends, as the gateway knows it; UNAUTHENTICATED when it is unknown or revoked. */
  whoami(): Promise<ApiKeyInfo> {
    return this.json('GET', '/system/whoami');
  }

  /** Adds or replaces these secrets of a function; the others stay. Answers with names only. */
  putSecrets(name: string, values: Record<string, SecretValue>): Promise<SecretInfo[]> {
    return this.json('PUT', `/system/functions/${encodeURIComponent(name)}/secrets`, values);
  }

  listSecrets(name: string): Promise<SecretInfo[]> {
    return this.json('GET', `/system/functions/${encodeURIComponent(name)}/secrets`);
  }

  async deleteSecret(name: string, key: string): Promise<void> {
    await this.request('DELETE', `/system/functions/${encodeURIComponent(name)}/secrets/${encodeURIComponent(key)}`);
  }

  /** What every worker holds (`hearth ps`). */
  instances(functionName?: string): Promise<InstancesInfo> {
    const query = functionName ? `?function=${encodeURIComponent(functionName)}` : '';
    return this.json('GET', `/system/instances${query}`);
  }

  /** Sets minWarm and/or maxInstances without a deploy; answers with the sizes now in force. */
  scale(name: string, change: { minWarm?: number; maxInstances?: number }): Promise<{ name: string; minWarm: number; maxInstances: number }> {
    return this.json('PUT', `/system/functions/${encodeURIComponent(name)}/scale`, change);
  }

  /** `GET /system/traces/:id`: one trace with its spans; NOT_FOUND until its first spans reach the store. */
  trace(traceId: string): Promise<TraceInfo> {
    return this.json('GET', `/system/traces/${encodeURIComponent(traceId)}`);
  }

  /** Calls `/function/NAME[/path]`; resolves with any status, rejects only when the gateway is unreachable. */
  invoke(name: string, opts: InvokeOptions = {}): Promise<Response> {
    const sub = opts.path ? (opts.path.startsWith('/') ? opts.path : `/${opts.path}`) : '';
    const method = (opts.method ?? (opts.body ? 'POST' : 'GET')).toUpperCase();
    return this.send(`/function/${encodeURIComponent(name)}${sub}`, {
      method,
      headers: { ...(opts.withKey ? authHeaders(this.auth) : {}), ...opts.headers },
      ...(opts.body && method !== 'GET' && method !== 'HEAD' ? { body: opts.body } : {}),
    });
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.request(method, path, body);
    return (await res.json()) as T;
  }

  /** A management call: throws the gateway's error as a HearthError. */
  private async request(method: string, path: string, body?: unknown): Promise<Response> {
    const res = await this.send(path, {
      method,
      headers: { ...authHeaders(this.auth), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(MANAGEMENT_TIMEOUT_MS),
    });
    if (res.ok) return res;
    throw await errorFromResponse(res, `${method} ${path}`, this.auth);
  }

  private async send(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${this.baseUrl}${path}`, init);
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') {
        throw new HearthError('TIMEOUT', `gateway ${this.baseUrl} did not answer ${init.method} ${path} in ${MANAGEMENT_TIMEOUT_MS / 1000} s`, { cause: err });
      }
      throw unavailable(`gateway ${this.baseUrl} is unreachable (${networkReason(err)}); is "npm start" running?`, err);
    }
  }
}

/**
 * The gateway's `{ error, code }` body as a HearthError; anything else keeps the status. A 401
 * also says which key was sent (where it came from, never the key) or how to log in.
 */
export async function errorFromResponse(res: Response, what: string, auth?: ResolvedKey): Promise<HearthError> {
  const err = await parseErrorResponse(res, what);
  if (err.code !== 'UNAUTHENTICATED') return err;
  const hint = auth
    ? ` (the key came from the ${auth.source}${auth.file ? ` ${auth.file}` : ''})`
    : '; or save a key for this gateway with `hearth login --gateway URL --key KEY`';
  return new HearthError('UNAUTHENTICATED', `${err.message}${hint}`);
}

async function parseErrorResponse(res: Response, what: string): Promise<HearthError> {
  const text = await res.text().catch(() => '');
  try {
    const value = JSON.parse(text) as { code?: string; error?: string; message?: string };
    if (value && (value.error || value.message)) return errorFromJson(value);
  } catch {
    // not JSON: fall through
  }
  const code = res.status === 404 ? 'NOT_FOUND' : res.status === 400 ? 'INVALID_ARGUMENT' : res.status === 401 ? 'UNAUTHENTICATED' : res.status === 503 ? 'UNAVAILABLE' : 'INTERNAL';
  const snippet = text.trim().split('\n')[0]?.slice(0, 200);
  return new HearthError(code, `${what}: gateway answered ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}`);
}
