import { HearthError, errorFromJson, unavailable, type FunctionSpec } from '@hearth/core';
import { networkReason } from './errors.ts';

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

export interface InvokeOptions {
  method?: string;
  /** Sub-path after `/function/NAME`, may carry a query string: `/items?limit=2`. */
  path?: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
}

const MANAGEMENT_TIMEOUT_MS = 30_000;

/**
 * A thin typed wrapper over `fetch` for the gateway API. Management calls turn error
 * responses into HearthErrors (the gateway sends `{ error, code }`); `invoke` hands back
 * the raw Response, because a function's answer is the user's, whatever its status.
 */
export class GatewayClient {
  readonly baseUrl: string;

  constructor(baseUrl: string) {
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

  /** Calls `/function/NAME[/path]`; resolves with any status, rejects only when the gateway is unreachable. */
  invoke(name: string, opts: InvokeOptions = {}): Promise<Response> {
    const sub = opts.path ? (opts.path.startsWith('/') ? opts.path : `/${opts.path}`) : '';
    const method = (opts.method ?? (opts.body ? 'POST' : 'GET')).toUpperCase();
    return this.send(`/function/${encodeURIComponent(name)}${sub}`, {
      method,
      headers: opts.headers ?? {},
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
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(MANAGEMENT_TIMEOUT_MS),
    });
    if (res.ok) return res;
    throw await errorFromResponse(res, `${method} ${path}`);
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

/** The gateway's `{ error, code }` body as a HearthError; anything else keeps the status. */
export async function errorFromResponse(res: Response, what: string): Promise<HearthError> {
  const text = await res.text().catch(() => '');
  try {
    const value = JSON.parse(text) as { code?: string; error?: string; message?: string };
    if (value && (value.error || value.message)) return errorFromJson(value);
  } catch {
    // not JSON: fall through
  }
  const code = res.status === 404 ? 'NOT_FOUND' : res.status === 400 ? 'INVALID_ARGUMENT' : res.status === 503 ? 'UNAVAILABLE' : 'INTERNAL';
  const snippet = text.trim().split('\n')[0]?.slice(0, 200);
  return new HearthError(code, `${what}: gateway answered ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}`);
}
