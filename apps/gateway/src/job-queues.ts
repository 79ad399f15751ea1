import { Job, Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import {
  HearthError,
  JOBS,
  TRIGGER_QUEUE_PREFIX,
  asyncQueueFor,
  triggersChannel,
  type AsyncJob,
  type QueueTrigger,
} from '@hearth/core';
import type { CallRow } from './call-store.ts';

/** Async calls and their failures stay in Redis a while; Postgres keeps them for good. */
const ASYNC_JOB_OPTIONS: JobsOptions = {
  // An async call is retried by the user (`hearth calls retry`), never behind their back.
  attempts: 1,
  removeOnComplete: { age: 3600 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

/** Jobs added over HTTP keep their id (the idempotency key) for a day after they complete. */
const TRIGGER_JOB_OPTIONS: JobsOptions = {
  removeOnComplete: { age: 24 * 3600 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

const unavailable = (err: unknown) => new HearthError('UNAVAILABLE', `queue unavailable: ${(err as Error).message}`, { cause: err });

/**
 * The gateway's producer side: async calls onto the lock-class queues, jobs onto trigger
 * queues (BullMQ's default prefix, as any producer would), retries of dead calls, and the
 * "triggers changed" announcement that makes workers reconcile.
 */
export class JobQueues {
  private readonly queues = new Map<string, Queue>();
  private readonly publisher: Redis;
  private closing?: Promise<void>;

  constructor(
    private readonly connection: ConnectionOptions,
    private readonly prefix: string,
  ) {
    this.publisher = new Redis(connection as RedisOptions);
    this.publisher.on('error', () => {});
  }

  private queue(name: string, prefix: string): Queue {
    const key = `${prefix}\n${name}`;
    let queue = this.queues.get(key);
    if (!queue) {
      queue = new Queue(name, { connection: this.connection, prefix });
      queue.on('error', () => {});
      this.queues.set(key, queue);
    }
    return queue;
  }

  /** The queue a call row's job lives on (async and cron: Hearth's prefix; queue triggers: BullMQ's). */
  private queueOf(call: CallRow): Queue {
    return this.queue(call.queue, call.kind === 'queue' ? TRIGGER_QUEUE_PREFIX : this.prefix);
  }

  /** Enqueues an async call on the lock class of its function's timeout; its job id is the call id. */
  async enqueueAsync(data: AsyncJob): Promise<{ queue: string; jobId: string }> {
    const queue = this.queue(asyncQueueFor(data.function.spec.timeoutMs), this.prefix);
    try {
      await queue.add(JOBS.async, data, { ...ASYNC_JOB_OPTIONS, jobId: data.callId });
    } catch (err) {
      throw unavailable(err);
    }
    return { queue: queue.name, jobId: data.callId };
  }

  /** Adds a job to a trigger queue. An id that is already there is not added again. */
  async addToTriggerQueue(trigger: QueueTrigger, job: { name: string; data: unknown; jobId?: string; delayMs?: number }): Promise<{ jobId: string; duplicate: boolean }> {
    const queue = this.queue(trigger.queue, TRIGGER_QUEUE_PREFIX);
    try {
      const existing = job.jobId ? await Job.fromId(queue, job.jobId) : undefined;
      if (existing) return { jobId: existing.id!, duplicate: true };
      const added = await queue.add(job.name, job.data, {
        ...TRIGGER_JOB_OPTIONS,
        attempts: trigger.attempts,
        ...(trigger.backoff ? { backoff: trigger.backoff } : {}),
        ...(job.jobId ? { jobId: job.jobId } : {}),
        ...(job.delayMs ? { delay: job.delayMs } : {}),
      });
      return { jobId: added.id!, duplicate: false };
    } catch (err) {
      throw unavailable(err);
    }
  }

  /**
   * Runs a dead call again with its original payload. A job still in BullMQ's failed set is
   * retried in place (same id, attempts reset); one that is gone, or an async call (whose
   * age must restart, or it would expire again), is added anew under the same job id.
   */
  async retry(call: CallRow): Promise<{ jobId: string }> {
    const queue = this.queueOf(call);
    try {
      const job = await Job.fromId(queue, call.jobId);
      if (job && call.kind !== 'async' && (await job.isFailed())) {
        await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
        return { jobId: call.jobId };
      }
      if (job) await job.remove();
      if (call.kind === 'async') {
        const data: AsyncJob = { ...(call.payload as AsyncJob), enqueuedAt: Date.now() };
        await queue.add(JOBS.async, data, { ...ASYNC_JOB_OPTIONS, jobId: call.jobId });
      } else if (call.kind === 'cron') {
        await queue.add(JOBS.cron, call.payload, { ...ASYNC_JOB_OPTIONS, jobId: call.jobId });
      } else {
        const { name, data } = call.payload as { name: string; data: unknown };
        // BullMQ refuses integer custom ids: a removed job with an id from its counter comes back under a new id.
        const keepId = `${Number.parseInt(call.jobId, 10)}` !== call.jobId;
        const added = await queue.add(name, data, { ...TRIGGER_JOB_OPTIONS, ...(keepId ? { jobId: call.jobId } : {}) });
        return { jobId: added.id! };
      }
      return { jobId: call.jobId };
    } catch (err) {
      if (err instanceof HearthError) throw err;
      throw unavailable(err);
    }
  }

  /** Tells every worker to reconcile its trigger consumers and the cron schedulers. */
  async announceTriggersChanged(functionName: string): Promise<void> {
    await this.publisher.publish(triggersChannel(this.prefix), functionName);
  }

  close(): Promise<void> {
    return (this.closing ??= (async () => {
      await Promise.all([...this.queues.values()].map((q) => q.close()));
      this.publisher.disconnect();
    })());
  }
}
