import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { HearthError, invokeJobSchema, isHearthError, type InvokeJob, type InvokeResult } from '@hearth/core';
import { VALIDATED } from './event-invoke.ts';
import type { InvocationLog, InvocationStatus } from './invocation-log.ts';
import { capLog } from './log-cap.ts';
import { SEATS_FULL, type InstancePool, type Lease } from './pool/instance-pool.ts';
import type { StartKind } from './pool/instance.ts';
import type { ScaleBook } from './pool/scale-book.ts';
import type { WorkerMetrics } from './metrics.ts';
import { ATTR } from '@hearth/core/telemetry';
import { endWorkerInvoke, startWorkerInvoke, withFunctionInvokeSpan, withPoolAcquireSpan } from './tracing.ts';

/** How long a call without a deadline may wait for an instance, beyond its own timeout. */
const WAIT_ALLOWANCE_MS = 60_000;

export interface ProcessorDeps {
  pool: InstancePool;
  scale: ScaleBook;
  invocations: InvocationLog;
  metrics?: WorkerMetrics;
  /** An instance's log is cut back past this many bytes (0: no cap). */
  logMaxBytes?: number;
}

function errorResult(err: HearthError, start: StartKind, durationMs: number, instanceId?: string): InvokeResult {
  return {
    status: err.status,
    headers: { 'content-type': 'application/json' },
    bodyBase64: Buffer.from(JSON.stringify(err.toJSON())).toString('base64'),
    cold: start !== 'warm',
    start,
    durationMs,
    ...(instanceId ? { instanceId } : {}),
    error: { code: err.code, message: err.message },
  };
}

/** Turns whatever getting an instance threw into an error a caller can act on. */
function startError(fn: InvokeJob['function'], err: unknown): HearthError {
  if (isHearthError(err)) {
    if (err.code === 'NOT_FOUND') return new HearthError('BAD_GATEWAY', `image of function "${fn.name}" not found: ${err.message}`);
    return err;
  }
  return new HearthError('BAD_GATEWAY', `function "${fn.name}" could not start: ${(err as Error).message}`, { cause: err });
}

/** The runtime says the request never reached the function (nothing listened on its socket). */
function neverDelivered(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (isHearthError(e) && e.details?.notDelivered === true) return true;
  }
  return false;
}

/** How long a handed-off job waits before a worker may take it again. */
const HAND_OFF_DELAY_MS = 50;

export function createInvokeProcessor(deps: ProcessorDeps) {
  const { pool, scale, invocations, metrics, logMaxBytes = 0 } = deps;

  return async function processInvoke(job: Job, token?: string): Promise<InvokeResult> {
    // From Redis the data is whatever a producer wrote; from runInvoke() it is typed already.
    const parsed = (job as { [VALIDATED]?: true })[VALIDATED] ? { success: true as const, data: job.data as InvokeJob } : invokeJobSchema.safeParse(job.data);
    // A malformed job can never succeed; retrying it would only hide the producer's bug.
    if (!parsed.success) throw new UnrecoverableError(`invalid invoke job: ${parsed.error.issues[0]?.message}`);
    const data = parsed.data;
    const fn = data.function;
    const createdAt = new Date();
    const started = performance.now();
    const trace = startWorkerInvoke(data);
    const elapsed = () => performance.now() - started;
    const record = (status: InvocationStatus, extra: { httpStatus?: number; start: StartKind; error?: string; instanceId?: string }) => {
      metrics?.invoked(fn.name, status, extra.start, elapsed());
      endWorkerInvoke(trace, { start: extra.start, instanceId: extra.instanceId, status: extra.httpStatus, ...(extra.error ? { error: { code: status, message: extra.error } } : {}) });
      const { start, ...rest } = extra;
      return invocations.record({ id: data.callId, functionName: fn.name, version: fn.version, trigger: data.trigger, status, durationMs: elapsed(), createdAt, cold: start !== 'warm', ...rest });
    };
    metrics?.queueWait(fn.name, Date.now() - data.enqueuedAt);

    if (data.deadline !== undefined && Date.now() > data.deadline) {
      const err = new HearthError('TIMEOUT', `call to "${fn.name}" waited in the queue past its deadline and was not run`);
      await record('expired', { start: 'warm', error: err.message });
      return errorResult(err, 'warm', 0);
    }

    const waitUntil = data.deadline ?? Date.now() + fn.spec.timeoutMs + WAIT_ALLOWANCE_MS;
    // A warm instance that died while idle refuses the connection: the call never reached
    // it, so it goes once more to another instance instead of failing.
    for (let attempt = 1; ; attempt++) {
      let lease: Lease;
      try {
        // Only a job of a BullMQ queue (with its lock token) can go back to the queue.
        const handOff = token !== undefined && typeof job.moveToDelayed === 'function';
        lease = await withPoolAcquireSpan(trace, () => pool.acquire(scale.target(fn), waitUntil, { handOff }));
      } catch (err) {
        if (token !== undefined && isHearthError(err) && err.details?.[SEATS_FULL] === true) {
          // Another worker runs every instance this version may have: the job goes back to
          // the queue (no attempt spent), where that worker, or this one once a seat is free, takes it.
          endWorkerInvoke(trace, { error: { code: 'HANDED_OFF', message: err.message } });
          await job.moveToDelayed(Date.now() + HAND_OFF_DELAY_MS, token);
          throw new DelayedError();
        }
        const e = startError(fn, err);
        await record(e.code === 'TIMEOUT' ? 'timeout' : 'error', { start: 'cold', error: e.message, httpStatus: e.status });
        return errorResult(e, 'cold', elapsed());
      }
      const { instance, start } = lease;
      const instanceId = instance.id;
      try {
        const response = await withFunctionInvokeSpan(trace, { [ATTR.faasInstance]: instanceId }, (traceparent) =>
          instance.sandbox!.invoke(
            {
              method: data.request.method,
              path: data.request.path,
              query: data.request.query,
              headers: { ...data.request.headers, 'x-call-id': data.callId },
              body: Buffer.from(data.request.bodyBase64, 'base64'),
            },
            { timeoutMs: fn.spec.timeoutMs, ...(traceparent ? { traceparent } : {}) },
          ),
        );
        lease.release();
        if (instance.logPath && logMaxBytes) await capLog(instance.logPath, logMaxBytes).catch(() => undefined);
        const status = response.status >= 500 ? 'failed' : 'succeeded';
        await record(status, { httpStatus: response.status, start, instanceId });
        return {
          status: response.status,
          headers: response.headers,
          bodyBase64: response.body.toString('base64'),
          cold: start !== 'warm',
          start,
          durationMs: elapsed(),
          instanceId,
        };
      } catch (err) {
        // The instance answered, only too much: it stays. Otherwise (timed out, crashed) it
        // is never reused: its state is unknown.
        const tooLarge = isHearthError(err, 'TOO_LARGE');
        lease.release({ healthy: tooLarge });
        // The log outlives a stopped instance: it is capped as well.
        if (instance.logPath && logMaxBytes) await capLog(instance.logPath, logMaxBytes).catch(() => undefined);
        if (attempt === 1 && start === 'warm' && neverDelivered(err)) continue;
        let e: HearthError;
        if (isHearthError(err, 'TIMEOUT')) {
          e = new HearthError('TIMEOUT', `function "${fn.name}" timed out after ${fn.spec.timeoutMs} ms; the instance was stopped`);
        } else if (tooLarge) {
          e = new HearthError('BAD_GATEWAY', `function "${fn.name}": ${(err as Error).message}`);
        } else {
          e = new HearthError('BAD_GATEWAY', `function "${fn.name}" crashed: ${(err as Error).message}`);
        }
        await record(e.code === 'TIMEOUT' ? 'timeout' : 'error', { start, error: e.message, httpStatus: e.status, instanceId });
        return errorResult(e, start, elapsed(), instanceId);
      }
    }
  };
}
