import { UnrecoverableError, type Job, type JobsOptions } from 'bullmq';
import { callbackJobSchema } from '@hearth/core';

/** A receiver that is down gets the result again after 1, 2, 4, 8, 16 s and so on. */
export const CALLBACK_ATTEMPTS = 8;
export const callbackJobOptions: JobsOptions = {
  attempts: CALLBACK_ATTEMPTS,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 3600 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

const CALLBACK_TIMEOUT_MS = 10_000;

/** Headers of the function's answer that describe its body; the rest stays with the call record. */
const BODY_HEADERS = new Set(['content-type', 'content-encoding', 'content-language']);

/**
 * POSTs an async call's result to its X-Callback-Url, as OpenFaaS does: the function's body
 * and content type, with X-Call-Id, X-Function-Name, X-Function-Status and
 * X-Duration-Seconds. A non-2xx answer or a network error fails the attempt; BullMQ retries
 * with backoff.
 */
export async function processCallback(job: Job): Promise<number> {
  const parsed = callbackJobSchema.safeParse(job.data);
  if (!parsed.success) throw new UnrecoverableError(`invalid callback job: ${parsed.error.issues[0]?.message}`);
  const cb = parsed.data;
  const headers: Record<string, string> = {
    'x-call-id': cb.callId,
    'x-function-name': cb.functionName,
    'x-function-status': String(cb.status),
    'x-duration-seconds': (cb.durationMs / 1000).toFixed(3),
  };
  for (const [key, value] of Object.entries(cb.headers)) {
    if (BODY_HEADERS.has(key.toLowerCase())) headers[key.toLowerCase()] = value;
  }
  let res: Response;
  try {
    res = await fetch(cb.url, {
      method: 'POST',
      headers,
      body: Buffer.from(cb.bodyBase64, 'base64'),
      signal: AbortSignal.timeout(CALLBACK_TIMEOUT_MS),
    });
  } catch (err) {
    throw new Error(`callback to ${cb.url} for call ${cb.callId} failed: ${(err as Error).message}`);
  }
  await res.arrayBuffer().catch(() => undefined);
  if (!res.ok) throw new Error(`callback to ${cb.url} for call ${cb.callId} answered ${res.status}`);
  return res.status;
}
