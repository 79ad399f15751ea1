import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, type ConnectionOptions } from 'bullmq';
import { HearthError, JOBS, QUEUES, invokeResultSchema, type InvokeJobInput, type InvokeResult, type WireRequest } from '@hearth/core';
import { jobFunction, type FunctionRecord } from './function-store.ts';

/**
 * How long a caller waits beyond the function's own timeout: room for a cold start
 * (image pull, unpack, sandbox start) and for the queue.
 */
const START_ALLOWANCE_MS = 60_000;

/** How long putting a call on the queue may take before the caller gets a 503. */
const ENQUEUE_TIMEOUT_MS = 5_000;

function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A worker's own queue that has not been used this long has its connections closed. */
const IDLE_QUEUE_MS = 5 * 60_000;

interface QueueLink {
  queue: Queue;
  events: QueueEvents;
  ready: Promise<unknown>;
  usedAt: number;
}

/**
 * Puts calls on an invoke queue (the shared one, or a worker's own, see WarmRouter) and
 * waits for their results through that queue's events.
 */
export class Invoker {
  private readonly links = new Map<string, QueueLink>();
  private readonly sweeper: NodeJS.Timeout;
  private closing?: Promise<void>;

  constructor(
    private readonly connection: ConnectionOptions,
    private readonly prefix: string,
  ) {
    this.link(QUEUES.invoke);
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  async ready(): Promise<void> {
    await this.link(QUEUES.invoke).ready;
  }

  private link(name: string): QueueLink {
    let link = this.links.get(name);
    if (!link) {
      const queue = new Queue(name, { connection: this.connection, prefix: this.prefix });
      const events = new QueueEvents(name, { connection: this.connection, prefix: this.prefix });
      // Errors on these long-lived connections are retried by ioredis; a listener keeps them from crashing the process.
      queue.on('error', () => {});
      events.on('error', () => {});
      link = { queue, events, ready: Promise.all([queue.waitUntilReady(), events.waitUntilReady()]), usedAt: Date.now() };
      this.links.set(name, link);
    }
    link.usedAt = Date.now();
    return link;
  }

  private sweep(): void {
    for (const [name, link] of this.links) {
      if (name === QUEUES.invoke || Date.now() - link.usedAt < IDLE_QUEUE_MS) continue;
      this.links.delete(name);
      void Promise.all([link.queue.close(), link.events.close()]).catch(() => undefined);
    }
  }

  /** `traceparent` is the W3C context the worker's spans continue; `callId` names the call (and its job). */
  async invokeSync(
    fn: FunctionRecord,
    request: WireRequest,
    traceparent?: string,
    callId: string = randomUUID(),
    queueName: string = QUEUES.invoke,
  ): Promise<InvokeResult & { callId: string }> {
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
    const link = this.link(queueName);
    let job;
    try {
      // The events stream is read from "now": it must be listening before the job can finish.
      // Without Redis, ioredis would hold the command until it is back: the caller gets a 503 instead.
      await withinMs(link.ready, ENQUEUE_TIMEOUT_MS, 'Redis did not answer');
      job = await withinMs(link.queue.add(JOBS.invoke, data, {
        jobId: callId,
        // A synchronous call is answered once; retrying would run it twice behind the caller's back.
        attempts: 1,
        removeOnComplete: { age: 300 },
        removeOnFail: { age: 3600 },
      }), ENQUEUE_TIMEOUT_MS, 'Redis did not answer');
    } catch (err) {
      throw new HearthError('UNAVAILABLE', `queue unavailable: ${(err as Error).message}`, { cause: err });
    }
    let value: unknown;
    try {
      value = await job.waitUntilFinished(link.events, waitMs);
    } catch (err) {
      const message = (err as Error).message;
      if (/timed out/i.test(message)) {
        // A worker answers with its own timeout well before this one: no answer at all means
        // the worker that took the call stopped, or none is running.
        throw new HearthError('TIMEOUT', `function "${fn.name}" did not answer within ${waitMs} ms: no worker reported back (the worker running the call stopped, or none is running; see hearth ps)`);
      }
      throw new HearthError('BAD_GATEWAY', `function "${fn.name}" failed in the worker: ${message}`);
    }
    const parsed = invokeResultSchema.safeParse(value);
    if (!parsed.success) throw new HearthError('BAD_GATEWAY', 'worker returned a malformed result');
    return { ...parsed.data, callId };
  }

  close(): Promise<void> {
    clearInterval(this.sweeper);
    return (this.closing ??= Promise.all([...this.links.values()].flatMap((l) => [l.queue.close(), l.events.close()])).then(() => undefined));
  }
}
