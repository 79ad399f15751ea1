import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UnrecoverableError, type Job } from 'bullmq';
import { HearthError, invokeJobSchema, isHearthError, type HearthConfig, type InvokeJob, type InvokeResult } from '@hearth/core';
import { createRuncSandbox, type Sandbox } from '@hearth/runtime';
import type { ImageCache } from './image-cache.ts';
import type { InstancePool } from './instance-pool.ts';
import type { InvocationLog, InvocationStatus } from './invocation-log.ts';

export interface ProcessorDeps {
  config: HearthConfig;
  images: ImageCache;
  pool: InstancePool;
  invocations: InvocationLog;
}

/** A version's instances are only ever reused for that exact version. */
export const instanceKey = (job: InvokeJob) => `${job.function.name}@${job.function.version}:${job.function.imageDigest}`;

function errorResult(err: HearthError, cold: boolean, durationMs: number, instanceId?: string): InvokeResult {
  return {
    status: err.status,
    headers: { 'content-type': 'application/json' },
    bodyBase64: Buffer.from(JSON.stringify(err.toJSON())).toString('base64'),
    cold,
    durationMs,
    ...(instanceId ? { instanceId } : {}),
    error: { code: err.code, message: err.message },
  };
}

/** Turns whatever a cold start threw into an error a caller can act on. */
function startError(fn: InvokeJob['function'], err: unknown): HearthError {
  if (isHearthError(err)) {
    if (err.code === 'NOT_FOUND') return new HearthError('BAD_GATEWAY', `image of function "${fn.name}" not found: ${err.message}`);
    return err;
  }
  return new HearthError('BAD_GATEWAY', `function "${fn.name}" could not start: ${(err as Error).message}`, { cause: err });
}

export function createInvokeProcessor(deps: ProcessorDeps) {
  const { config, images, pool, invocations } = deps;

  async function createInstance(job: InvokeJob): Promise<Sandbox> {
    const fn = job.function;
    const image = await images.prepare(fn.imageRef, fn.imageDigest);
    const id = `${config.instancePrefix}${fn.name.slice(0, 16)}-${randomBytes(4).toString('hex')}`;
    const sandbox = createRuncSandbox({
      home: config.home,
      id,
      layers: image.layers,
      imageConfig: image.config,
      limits: { memoryMb: fn.spec.memoryMb, cpu: fn.spec.cpu },
      env: { ...fn.spec.env, HEARTH_FUNCTION: fn.name, HEARTH_VERSION: String(fn.version) },
      logPath: path.join(config.home, 'logs', fn.name, `${id}.log`),
    });
    try {
      await sandbox.start();
    } catch (err) {
      await sandbox.stop().catch(() => {});
      throw err;
    }
    return sandbox;
  }

  return async function processInvoke(job: Job): Promise<InvokeResult> {
    const parsed = invokeJobSchema.safeParse(job.data);
    // A malformed job can never succeed; retrying it would only hide the producer's bug.
    if (!parsed.success) throw new UnrecoverableError(`invalid invoke job: ${parsed.error.issues[0]?.message}`);
    const data = parsed.data;
    const fn = data.function;
    const createdAt = new Date();
    const started = performance.now();
    const elapsed = () => performance.now() - started;
    const record = (status: InvocationStatus, extra: { httpStatus?: number; cold: boolean; error?: string; instanceId?: string }) =>
      invocations.record({ id: data.callId, functionName: fn.name, version: fn.version, trigger: data.trigger, status, durationMs: elapsed(), createdAt, ...extra });

    if (data.deadline !== undefined && Date.now() > data.deadline) {
      const err = new HearthError('TIMEOUT', `call to "${fn.name}" waited in the queue past its deadline and was not run`);
      await record('expired', { cold: false, error: err.message });
      return errorResult(err, false, 0);
    }

    let lease;
    try {
      lease = await pool.acquire(instanceKey(data), () => createInstance(data));
    } catch (err) {
      const e = startError(fn, err);
      await record('error', { cold: true, error: e.message, httpStatus: e.status });
      return errorResult(e, true, elapsed());
    }
    const { instance, cold } = lease;
    const instanceId = instance.sandbox.id;
    try {
      const response = await instance.sandbox.invoke(
        {
          method: data.request.method,
          path: data.request.path,
          query: data.request.query,
          headers: { ...data.request.headers, 'x-call-id': data.callId },
          body: Buffer.from(data.request.bodyBase64, 'base64'),
        },
        { timeoutMs: fn.spec.timeoutMs, ...(data.traceparent ? { traceparent: data.traceparent } : {}) },
      );
      pool.release(instance, fn.spec.scale.idleTtlSec ?? config.idleTtlSec);
      const status = response.status >= 500 ? 'failed' : 'succeeded';
      await record(status, { httpStatus: response.status, cold, instanceId });
      return {
        status: response.status,
        headers: response.headers,
        bodyBase64: response.body.toString('base64'),
        cold,
        durationMs: elapsed(),
        instanceId,
      };
    } catch (err) {
      // A timed-out or crashed instance is never reused: its state is unknown.
      await pool.discard(instance);
      let e: HearthError;
      if (isHearthError(err, 'TIMEOUT')) {
        e = new HearthError('TIMEOUT', `function "${fn.name}" timed out after ${fn.spec.timeoutMs} ms; the instance was stopped`);
      } else {
        e = new HearthError('BAD_GATEWAY', `function "${fn.name}" crashed: ${(err as Error).message}`);
      }
      await record(e.code === 'TIMEOUT' ? 'timeout' : 'error', { cold, error: e.message, httpStatus: e.status, instanceId });
      return errorResult(e, cold, elapsed(), instanceId);
    }
  };
}
