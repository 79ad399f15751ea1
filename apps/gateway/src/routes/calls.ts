import { Hono } from 'hono';
import { CALL_STATUSES, HearthError, type CallStatus } from '@hearth/core';
import type { AppDeps } from '../deps.ts';
import { DEAD_STATUSES, type CallRow } from '../call-store.ts';

/** A body is shown as text when its content type says it is text or JSON, else as base64. */
function bodyOf(stored: { headers?: Record<string, string>; bodyBase64?: string }) {
  const type = Object.entries(stored.headers ?? {}).find(([k]) => k.toLowerCase() === 'content-type')?.[1] ?? '';
  const bytes = Buffer.from(stored.bodyBase64 ?? '', 'base64');
  const textual = /^text\/|json|xml|javascript|x-www-form-urlencoded/i.test(type) || type === '';
  return textual ? { body: bytes.toString('utf8'), bodyEncoding: 'utf8' as const } : { body: bytes.toString('base64'), bodyEncoding: 'base64' as const };
}

/** A call as GET /calls/:id shows it (apps/gateway/API.md, CallInfo). */
export function callInfo(row: CallRow) {
  let result: unknown = null;
  const stored = row.result as { status?: number; headers?: Record<string, string>; bodyBase64?: string; returnValue?: unknown } | null;
  if (stored && 'returnValue' in stored) result = { returnValue: stored.returnValue };
  else if (stored && typeof stored.status === 'number') result = { status: stored.status, headers: stored.headers ?? {}, ...bodyOf(stored) };
  return {
    id: row.id,
    kind: row.kind,
    function: row.functionName,
    version: row.version,
    status: row.status,
    attempts: row.attempts,
    queue: row.queue,
    jobId: row.jobId,
    httpStatus: row.httpStatus,
    error: row.error,
    durationMs: row.durationMs,
    callbackUrl: row.callbackUrl,
    createdAt: row.createdAt.toISOString(),
    startedAt: row.startedAt?.toISOString() ?? null,
    finishedAt: row.finishedAt?.toISOString() ?? null,
    result,
  };
}

function statuses(query: { status?: string; failed?: string }): CallStatus[] | undefined {
  if (query.failed !== undefined && query.failed !== 'false' && query.failed !== '0') return DEAD_STATUSES;
  if (!query.status) return undefined;
  const list = query.status.split(',').map((s) => s.trim());
  for (const s of list) {
    if (!(CALL_STATUSES as readonly string[]).includes(s)) throw new HearthError('INVALID_ARGUMENT', `status "${s}" is not one of ${CALL_STATUSES.join(', ')}`);
  }
  return list as CallStatus[];
}

/** `/calls`: async calls, queue jobs and cron ticks with their outcome; retry of dead ones. */
export function callRoutes(deps: AppDeps): Hono {
  const app = new Hono();

  app.get('/', async (c) => {
    const limitRaw = c.req.query('limit');
    const limit = limitRaw === undefined ? 50 : Number(limitRaw);
    if (!Number.isInteger(limit) || limit < 1) throw new HearthError('INVALID_ARGUMENT', `limit "${limitRaw}" must be a positive integer`);
    const s = statuses({ status: c.req.query('status'), failed: c.req.query('failed') });
    const fn = c.req.query('function');
    const rows = await deps.calls.list({ limit: Math.min(limit, 1000), ...(s ? { statuses: s } : {}), ...(fn ? { functionName: fn } : {}) });
    return c.json(rows.map(callInfo));
  });

  app.get('/:id', async (c) => c.json(callInfo(await deps.calls.require(c.req.param('id')))));

  app.post('/:id/retry', async (c) => {
    const id = c.req.param('id');
    const row = await deps.calls.requeue(id);
    let jobId: string;
    try {
      ({ jobId } = await deps.jobs.retry(row));
    } catch (err) {
      await deps.calls.markFailed(id, `retry could not be enqueued: ${(err as Error).message}`).catch(() => {});
      throw err;
    }
    // A queue job that had to come back under a new id is a new call; the old row says where it went.
    const newId = row.kind === 'queue' && jobId !== row.jobId ? `${row.queue}:${jobId}` : id;
    if (newId !== id) await deps.calls.markFailed(id, `retried as call ${newId}`);
    return c.json({ id: newId, retryOf: id, status: 'queued' }, 202);
  });

  return app;
}
