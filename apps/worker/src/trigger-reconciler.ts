import type { Queue } from 'bullmq';
import { JOBS, asyncQueueFor, cronSchedulerId, cronTriggers, queueTriggers, type CronJob } from '@hearth/core';
import type { FunctionCatalog } from './function-catalog.ts';
import { lockOptions } from './lock-settings.ts';
import { QueueTriggerConsumer, type QueueBinding, type QueueConsumerDeps } from './queue-trigger-consumer.ts';

export interface ReconcilerDeps {
  catalog: FunctionCatalog;
  consumer: QueueConsumerDeps;
  /** The async lock-class queues, by name; cron schedulers live on them. */
  asyncQueues: Map<string, Queue>;
  onError: (err: unknown) => void;
}

/** Cron ticks are kept for an hour (or the last 1000), failures for a week, like async calls. */
const CRON_JOB_OPTIONS = { removeOnComplete: { age: 3600, count: 1000 }, removeOnFail: { age: 7 * 24 * 3600 } };

/**
 * Makes this worker's trigger consumers and the cron job schedulers match what Postgres
 * says the current versions declare. Runs at start, whenever the gateway announces a
 * change, and now and then in case an announcement was missed.
 *
 * Every worker reconciles: consumers are per process, and job schedulers are idempotent
 * (same id, same pattern), so two workers agree. A reconcile that read Postgres before a
 * deploy committed is followed by another one, since the announcement comes after commit.
 */
export class TriggerReconciler {
  private readonly consumers = new Map<string, QueueTriggerConsumer>();
  private readonly closingConsumers = new Set<Promise<void>>();
  private running?: Promise<void>;
  private again = false;
  private closed = false;

  constructor(private readonly deps: ReconcilerDeps) {}

  /** Queues this worker consumes now (for logs and tests). */
  get queues(): string[] {
    return [...this.consumers.keys()];
  }

  /** Reconciles now; calls that arrive while one runs are folded into a single rerun. */
  reconcile(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          try {
            await this.apply();
          } catch (err) {
            this.deps.onError(err);
          }
        } while (this.again && !this.closed);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async apply(): Promise<void> {
    if (this.closed) return;
    const functions = await this.deps.catalog.list();

    const wanted = new Map<string, QueueBinding>();
    const schedulers = new Map<string, Map<string, CronJob>>();
    for (const fn of functions) {
      for (const trigger of queueTriggers(fn.spec)) {
        const holder = wanted.get(trigger.queue);
        // The gateway refuses a second binding; one made before that check stays with its first function.
        if (holder) this.deps.onError(new Error(`queue "${trigger.queue}" is bound to both "${holder.fn.name}" and "${fn.name}"; "${holder.fn.name}" keeps it`));
        else wanted.set(trigger.queue, { fn, trigger });
      }
      for (const trigger of cronTriggers(fn.spec)) {
        const queue = asyncQueueFor(fn.spec.timeoutMs);
        const byId = schedulers.get(queue) ?? new Map<string, CronJob>();
        byId.set(cronSchedulerId(fn.name, trigger), { function: fn.name, cron: trigger.cron, ...(trigger.tz ? { tz: trigger.tz } : {}) });
        schedulers.set(queue, byId);
      }
    }

    for (const [queue, consumer] of this.consumers) {
      const binding = wanted.get(queue);
      if (!binding || lockOptions(binding.fn.spec.timeoutMs, this.deps.consumer.locks).lockDuration !== consumer.lockDuration) {
        this.consumers.delete(queue);
        this.retire(consumer);
      }
    }
    for (const [queue, binding] of wanted) {
      const existing = this.consumers.get(queue);
      if (existing) {
        existing.update(binding);
        continue;
      }
      const consumer = new QueueTriggerConsumer(binding, this.deps.consumer);
      this.consumers.set(queue, consumer);
      await consumer.waitUntilReady();
    }

    for (const [name, queue] of this.deps.asyncQueues) {
      const want = schedulers.get(name) ?? new Map<string, CronJob>();
      const have = await queue.getJobSchedulers(0, -1);
      const haveIds = new Set<string>();
      for (const s of have) {
        const id = s.key;
        haveIds.add(id);
        if (!want.has(id)) await queue.removeJobScheduler(id);
      }
      for (const [id, tick] of want) {
        if (haveIds.has(id)) continue;
        await queue.upsertJobScheduler(id, { pattern: tick.cron, ...(tick.tz ? { tz: tick.tz } : {}) }, { name: JOBS.cron, data: tick, opts: CRON_JOB_OPTIONS });
      }
    }
  }

  /** A consumer that is no longer wanted finishes its jobs in flight without holding up the reconcile. */
  private retire(consumer: QueueTriggerConsumer): void {
    const closing = consumer.close().catch(this.deps.onError);
    this.closingConsumers.add(closing);
    void closing.finally(() => this.closingConsumers.delete(closing));
  }

  /** Stops every consumer after its jobs in flight; leaves the schedulers (they belong to the deployment). */
  async close(): Promise<void> {
    this.closed = true;
    await this.running;
    for (const consumer of this.consumers.values()) this.retire(consumer);
    this.consumers.clear();
    await Promise.all(this.closingConsumers);
  }
}
