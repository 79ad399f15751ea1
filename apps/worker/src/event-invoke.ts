import type { Job } from 'bullmq';
import type { InvokeJob, InvokeResult, WireRequest } from '@hearth/core';

/** The worker's invoke path (createInvokeProcessor): pool, sandbox, invocation record. */
export type ProcessInvoke = (job: Job) => Promise<InvokeResult>;

/** Marks a job whose data was built in this process as an InvokeJob: processInvoke need not validate it again. */
export const VALIDATED = Symbol('hearth.validatedInvoke');

/**
 * Runs one invoke through the same path as an HTTP call. processInvoke reads only
 * `job.data`, so an event that already rides its own BullMQ job needs no second one.
 * The data is typed, not parsed: validating it again cost ~0.1 ms of CPU per queue job.
 */
export function runInvoke(processInvoke: ProcessInvoke, data: InvokeJob): Promise<InvokeResult> {
  return processInvoke({ data, [VALIDATED]: true } as unknown as Job);
}

/**
 * The POST a queue job or cron tick becomes: a JSON body with CloudEvents headers (binary
 * mode), or a batch of events with its own content type in `headers`.
 */
export function eventRequest(body: unknown, headers: Record<string, string>): WireRequest {
  return {
    method: 'POST',
    path: '/',
    query: '',
    headers: { 'content-type': 'application/json', ...headers },
    bodyBase64: Buffer.from(JSON.stringify(body ?? null)).toString('base64'),
  };
}

/** A function call succeeded when Hearth had nothing to say and the function answered 2xx. */
export const isSuccess = (r: InvokeResult) => !r.error && r.status >= 200 && r.status < 300;

const header = (r: InvokeResult, name: string) =>
  Object.entries(r.headers).find(([k]) => k.toLowerCase() === name)?.[1] ?? '';

/** The response body as a job's return value: parsed when it is JSON, else text. */
export function decodeBody(r: InvokeResult): unknown {
  const text = Buffer.from(r.bodyBase64, 'base64').toString('utf8');
  if (/\bjson\b/i.test(header(r, 'content-type'))) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/** One line saying why a call failed: Hearth's error, or the function's status and the start of its body. */
export function failureMessage(functionName: string, r: InvokeResult): string {
  if (r.error) return r.error.message;
  let body = Buffer.from(r.bodyBase64, 'base64').toString('utf8').trim();
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed?.error === 'string') body = parsed.error;
  } catch {
    // not JSON: keep the text
  }
  const snippet = body.split('\n')[0]?.slice(0, 200);
  return `function "${functionName}" answered ${r.status}${snippet ? `: ${snippet}` : ''}`;
}

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

/** How one event (a queue job) came out of a call: a return value, or why the attempt failed. */
export type EventAnswer =
  | { ok: true; returnValue: unknown; httpStatus: number; durationMs: number }
  | { ok: false; message: string; httpStatus: number; durationMs: number };

/** A call that carried one event: 2xx is its return value, anything else a failed attempt. */
export function eventAnswer(functionName: string, r: InvokeResult): EventAnswer {
  const { status: httpStatus, durationMs } = r;
  return isSuccess(r) ? { ok: true, returnValue: decodeBody(r), httpStatus, durationMs } : { ok: false, message: failureMessage(functionName, r), httpStatus, durationMs };
}

/**
 * A call that carried a batch of events (ids in the order sent). A failed call fails every
 * event. A 2xx answer is read as:
 * - a JSON array with one entry per event, in order: each entry is that event's return value;
 * - `{ "batchItemFailures": [{ "itemIdentifier": id, "message"? }] }` (Lambda's shape): those
 *   events failed this attempt, the others succeeded with no return value;
 * - anything else: every event succeeded, with the body as its return value.
 * An array of another length or a failure naming an id not in the batch fails the whole
 * batch: guessing which events ran could lose one.
 */
export function batchAnswers(functionName: string, r: InvokeResult, ids: string[]): EventAnswer[] {
  const { status: httpStatus, durationMs } = r;
  const fail = (message: string): EventAnswer[] => ids.map(() => ({ ok: false, message, httpStatus, durationMs }));
  if (!isSuccess(r)) return fail(failureMessage(functionName, r));
  const body = decodeBody(r);
  const shapes = 'one result per event, in order, or { "batchItemFailures": [{ "itemIdentifier": "<event id>" }] }';
  if (Array.isArray(body)) {
    if (body.length !== ids.length) {
      return fail(`function "${functionName}" answered a batch of ${plural(ids.length, 'event')} with an array of ${plural(body.length, 'result')}: return ${shapes}`);
    }
    return body.map((returnValue) => ({ ok: true, returnValue, httpStatus, durationMs }));
  }
  const failures = (body as { batchItemFailures?: unknown } | null)?.batchItemFailures;
  if (Array.isArray(failures)) {
    const failed = new Map<string, string>();
    for (const f of failures as { itemIdentifier?: unknown; message?: unknown }[]) {
      const id = f?.itemIdentifier;
      if (typeof id !== 'string' || !ids.includes(id)) {
        return fail(`function "${functionName}" reported a failure of ${JSON.stringify(id ?? null)}, which is not an event id of its batch: return ${shapes}`);
      }
      failed.set(id, typeof f.message === 'string' && f.message ? f.message : `function "${functionName}" reported event ${id} as failed`);
    }
    return ids.map((id) =>
      failed.has(id) ? { ok: false, message: failed.get(id)!, httpStatus, durationMs } : { ok: true, returnValue: null, httpStatus, durationMs },
    );
  }
  return ids.map(() => ({ ok: true, returnValue: body, httpStatus, durationMs }));
}

/** What `calls` keeps of an HTTP-shaped result. */
export const storedResult = (r: InvokeResult) => ({ status: r.status, headers: r.headers, bodyBase64: r.bodyBase64 });
