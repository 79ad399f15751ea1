import { UnrecoverableError, type Job, type Queue } from 'bullmq';
import {
  CLOUDEVENT_TYPES,
  HearthError,
  JOBS,
  asyncJobSchema,
  cloudEventHeaders,
  cronJobSchema,
  queueCallId,
  type AsyncJob,
  type CallbackJob,
  type InvokeResult,
} from '@hearth/core';
import type { CallLog, CallJobRef } from './call-log.ts';
import type { FunctionCatalog } from './function-catalog.ts';
import { callbackJobOptions } from './callback-processor.ts';
import { eventRequest, failureMessage, runInvoke, storedResult, type ProcessInvoke } from './event-invoke.ts';

export interface AsyncProcessorDeps {
  calls: CallLog;
  catalog: FunctionCatalog;
  processInvoke: ProcessInvoke;
  /** Where result deliveries to X-Callback-Url go. */
  callbacks: Queue;
}

/** Thrown to put a failed call in BullMQ's failed set, where `hearth calls retry` finds it. */
class CallFailed extends Error {
  override name = 'CallFailed';
}

/** An async call failed when Hearth produced the answer (timeout, crash) or the function answered 5xx. */
const failed = (r: InvokeResult) => Boolean(r.error) || r.status >= 500;

/**
 * Runs the jobs of the async lock-class queues: `/async-function/` calls and cron ticks.
 * Each call is claimed in Postgres first, so a job BullMQ hands out again after its call
 * succeeded (the worker died after the call but before the ack) is not run a second time.
 */
export function createAsyncProcessor(deps: AsyncProcessorDeps) {
  const { calls, catalog, processInvoke, callbacks } = deps;

  async function deliver(job: Job, data: AsyncJob, result: InvokeResult): Promise<void> {
    if (!data.callbackUrl) return;
    const delivery: CallbackJob = {
      url: data.callbackUrl,
      callId: data.callId,
      functionName: data.function.name,
      status: result.status,
      headers: result.headers,
      bodyBase64: result.bodyBase64,
      durationMs: result.durationMs,
    };
    // One delivery per job: a rerun of the same job (stalled) does not deliver twice, a retry
    // of the call (a new job, another timestamp) does.
    await callbacks.add(JOBS.callback, delivery, { ...callbackJobOptions, jobId: `${data.callId}-${job.timestamp}` });
  }

  async function processAsync(job: Job): Promise<void> {
    const parsed = asyncJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid async job: ${parsed.error.issues[0]?.message}`);
    const data = parsed.data;
    const ref: CallJobRef = {
      id: data.callId,
      kind: 'async',
      functionName: data.function.name,
      version: data.function.version,
      queue: job.queueName,
      jobId: job.id!,
      jobTimestamp: job.timestamp,
      payload: data,
      ...(data.callbackUrl ? { callbackUrl: data.callbackUrl } : {}),
    };
    if (!(await calls.start(ref))) {
      // Done before (the worker died after recording, maybe before the callback was queued):
      // queue the callback from the stored result; its job id keeps it to one delivery.
      const stored = (await calls.result(ref.id)) as Pick<InvokeResult, 'status' | 'headers' | 'bodyBase64'> | null;
      if (stored) await deliver(job, data, { ...stored, cold: false, durationMs: 0 });
      return;
    }

    const maxAgeMs = data.function.spec.maxEventAgeSec * 1000;
    if (Date.now() - data.enqueuedAt > maxAgeMs) {
      const err = new HearthError('TIMEOUT', `call to "${data.function.name}" waited in the queue longer than maxEventAgeSec (${data.function.spec.maxEventAgeSec} s) and was not run`);
      const body = Buffer.from(JSON.stringify(err.toJSON()));
      const result: InvokeResult = { status: err.status, headers: { 'content-type': 'application/json' }, bodyBase64: body.toString('base64'), cold: false, durationMs: 0, error: { code: err.code, message: err.message } };
      await calls.finish(ref, { status: 'expired', error: err.message, httpStatus: err.status, result: storedResult(result) });
      await deliver(job, data, result);
      return;
    }

    const result = await runInvoke(processInvoke, data);
    const ok = !failed(result);
    await calls.finish(ref, {
      status: ok ? 'succeeded' : 'failed',
      httpStatus: result.status,
      result: storedResult(result),
      durationMs: result.durationMs,
      ...(ok ? {} : { error: failureMessage(data.function.name, result) }),
    });
    await deliver(job, data, result);
    if (!ok) throw new CallFailed(failureMessage(data.function.name, result));
  }

  async function processCron(job: Job): Promise<void> {
    const parsed = cronJobSchema.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`invalid cron job: ${parsed.error.issues[0]?.message}`);
    const tick = parsed.data;
    // The tick runs the version current now; a deleted function's scheduler is about to be removed.
    const fn = await catalog.get(tick.function);
    if (!fn) return;
    const ref: CallJobRef = {
      id: queueCallId(job.queueName, job.id!),
      kind: 'cron',
      functionName: fn.name,
      version: fn.version,
      queue: job.queueName,
      jobId: job.id!,
      jobTimestamp: job.timestamp,
      payload: tick,
    };
    if (job.attemptsStarted > 1 && !(await calls.start(ref))) return;
    const scheduledFor = new Date(job.timestamp + (job.delay ?? 0));
    const result = await runInvoke(processInvoke, {
      callId: ref.id,
      function: fn,
      request: eventRequest(
        { cron: tick.cron, ...(tick.tz ? { tz: tick.tz } : {}), scheduledTime: scheduledFor.toISOString() },
        cloudEventHeaders({ id: job.id!, type: CLOUDEVENT_TYPES.cron, source: `/hearth/cron/${fn.name}`, time: scheduledFor }),
      ),
      trigger: 'timer',
      enqueuedAt: job.timestamp,
    });
    const ok = !failed(result) && result.status < 300;
    if (ok) {
      calls.finishLater(ref, { status: 'succeeded', httpStatus: result.status, result: storedResult(result), durationMs: result.durationMs });
      return;
    }
    const error = failureMessage(fn.name, result);
    await calls.finish(ref, { status: 'failed', httpStatus: result.status, result: storedResult(result), durationMs: result.durationMs, error });
    throw new CallFailed(error);
  }

  return async function processAsyncQueueJob(job: Job): Promise<void> {
    if (job.name === JOBS.cron) return processCron(job);
    return processAsync(job);
  };
}
