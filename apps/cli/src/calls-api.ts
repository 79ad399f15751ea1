import { HearthError, unavailable } from '@hearth/core';
import { authHeaders, errorFromResponse } from './api-client.ts';
import type { ResolvedKey } from './credentials.ts';
import { networkReason } from './errors.ts';

/** An async call, queue job or cron tick as the gateway reports it (apps/gateway/API.md, CallInfo). */
export interface CallInfo {
  id: string;
  kind: 'async' | 'queue' | 'cron';
  function: string;
  version: number | null;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'expired';
  attempts: number;
  queue: string;
  jobId: string;
  httpStatus: number | null;
  error: string | null;
  durationMs: number | null;
  callbackUrl: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  result: null | { returnValue: unknown } | { status: number; headers: Record<string, string>; body: string; bodyEncoding: 'utf8' | 'base64' };
}

export interface QueuedJob {
  queue: string;
  jobId: string;
  callId: string;
  function: string;
  duplicate: boolean;
}

const TIMEOUT_MS = 30_000;

/** The gateway's `/calls` and `/queues` routes, for `hearth calls` and `hearth queue`. */
export class CallsApi {
  private readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly auth?: ResolvedKey,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  list(filter: { failed?: boolean; functionName?: string; limit?: number } = {}): Promise<CallInfo[]> {
    const q = new URLSearchParams();
    if (filter.failed) q.set('failed', '1');
    if (filter.functionName) q.set('function', filter.functionName);
    if (filter.limit !== undefined) q.set('limit', String(filter.limit));
    const query = q.toString();
    return this.json('GET', `/calls${query ? `?${query}` : ''}`);
  }

  get(id: string): Promise<CallInfo> {
    return this.json('GET', `/calls/${encodeURIComponent(id)}`);
  }

  retry(id: string): Promise<{ id: string; retryOf: string; status: string }> {
    return this.json('POST', `/calls/${encodeURIComponent(id)}/retry`);
  }

  addJob(queue: string, body: Uint8Array, opts: { jobId?: string; name?: string; delayMs?: number } = {}): Promise<QueuedJob> {
    const q = new URLSearchParams();
    if (opts.jobId) q.set('jobId', opts.jobId);
    if (opts.name) q.set('name', opts.name);
    if (opts.delayMs) q.set('delay', String(opts.delayMs));
    const query = q.toString();
    return this.json('POST', `/queues/${encodeURIComponent(queue)}${query ? `?${query}` : ''}`, body);
  }

  private async json<T>(method: string, path: string, body?: Uint8Array): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: { ...authHeaders(this.auth), ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body } : {}),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (err) {
      if ((err as Error).name === 'TimeoutError') throw new HearthError('TIMEOUT', `gateway ${this.baseUrl} did not answer ${method} ${path} in ${TIMEOUT_MS / 1000} s`, { cause: err });
      throw unavailable(`gateway ${this.baseUrl} is unreachable (${networkReason(err)}); is "npm start" running?`, err);
    }
    if (!res.ok) throw await errorFromResponse(res, `${method} ${path}`, this.auth);
    return (await res.json()) as T;
  }
}
