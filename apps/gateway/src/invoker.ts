import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, type ConnectionOptions } from 'bullmq';
import { HearthError, JOBS, QUEUES, invokeResultSchema, type InvokeJobInput, type InvokeResult, type WireRequest } from '@hearth/core';
import { jobFunction, type FunctionRecord } from './function-store.ts';

/**
 * How long a caller waits beyond the function's own timeout: room for a cold start
 * (image pull, unpack, sandbox start) and for the queue.
 */
const START_ALLOWANCE_MS = 60_000;

/** Puts calls on the invoke queue and waits for their results. */
export class Invoker {
  private readonly queue: Queue;
  private readonly events: QueueEvents;
  private closing?: Promise<void>;

  constructor(connection: ConnectionOptions, prefix: string) {
    this.queue = new Queue(QUEUES.invoke, { connection, prefix });
    this.events = new QueueEvents(QUEUES.invoke, { connection, prefix });
    // Errors on these long-lived connections are retried by ioredis; a listener keeps them from crashing the process.
    this.queue.on('error', () => {});
    this.events.on('error', () => {});
  }

  async ready(): Promise<void> {
    await Promise.all([this.queue.waitUntilReady(), this.events.waitUntilReady()]);
  }

  async invokeSync(fn: FunctionRecord, request: WireRequest, traceparent?: string): Promise<InvokeResult & { callId: string }> {
    const callId = randomUUID();
    const waitMs = fn.spec.timeoutMs + START_ALLOWANCE_MS;
    const data: InvokeJobInput = {
      callId,
      function: jobFunction(fn),
      request,
      trigger: 'http',
      enqueuedAt: Date.now(),
      deadline: Date.now() + waitMs,
      ...(traceparent ? { traceparent } : {}),
    };
    let job;
    try {
      job = await this.queue.add(JOBS.invoke, data, {
        jobId: callId,
        // A synchronous call is answered once; retrying would run it twice behind the caller's back.
        attempts: 1,
        removeOnComplete: { age: 300 },
        removeOnFail: { age: 3600 },
      });
    } catch (err) {
      throw new HearthError('UNAVAILABLE', `queue unavailable: ${(err as Error).message}`, { cause: err });
    }
    let value: unknown;
    try {
      value = await job.waitUntilFinished(this.events, waitMs);
    } catch (err) {
      const message = (err as Error).message;
      if (/timed out/i.test(message)) {
        throw new HearthError('TIMEOUT', `function "${fn.name}" did not answer within ${waitMs} ms`);
      }
      throw new HearthError('BAD_GATEWAY', `function "${fn.name}" failed in the worker: ${message}`);
    }
    const parsed = invokeResultSchema.safeParse(value);
    if (!parsed.success) throw new HearthError('BAD_GATEWAY', 'worker returned a malformed result');
    return { ...parsed.data, callId };
  }

  close(): Promise<void> {
    return (this.closing ??= Promise.all([this.queue.close(), this.events.close()]).then(() => undefined));
  }
}
