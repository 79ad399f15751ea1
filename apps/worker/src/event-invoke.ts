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

/** The POST a queue job or cron tick becomes: JSON body, CloudEvents headers. */
export function eventRequest(body: unknown, ceHeaders: Record<string, string>): WireRequest {
  return {
    method: 'POST',
    path: '/',
    query: '',
    headers: { 'content-type': 'application/json', ...ceHeaders },
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

/** What `calls` keeps of an HTTP-shaped result. */
export const storedResult = (r: InvokeResult) => ({ status: r.status, headers: r.headers, bodyBase64: r.bodyBase64 });
