import { Worker, type ConnectionOptions, type Job } from 'bullmq';
import { CLOUDEVENT_TYPES, TRIGGER_QUEUE_PREFIX, cloudEventHeaders, queueCallId, type QueueTrigger } from '@hearth/core';
import type { CallLog, CallJobRef } from './call-log.ts';
import type { CurrentFunction } from './function-catalog.ts';
import { decodeBody, eventRequest, failureMessage, isSuccess, runInvoke, type ProcessInvoke } from './event-invoke.ts';
import { lockOptions, type LockSettings } from './lock-settings.ts';

/** A queue bound to the function (current version) that consumes it. */
export interface QueueBinding {
  fn: CurrentFunction;
  trigger: QueueTrigger;
}

export interface QueueConsumerDeps {
  connection: ConnectionOptions;
  calls: CallLog;
  processInvoke: ProcessInvoke;
  locks: LockSettings;
  onError: (err: unknown) => void;
}

/** A failed attempt whose message is the function's answer, not a stack worth printing. */
class FunctionFailed extends Error {
  override name = 'FunctionFailed';
}

/** How many in-flight jobs one worker process takes from the queue. */
export const consumerConcurrency = (b: QueueBinding) => b.trigger.concurrency ?? 1;

/**
 * Consumes one trigger queue (BullMQ's default prefix, so any plain producer reaches it)
 * and calls the bound function with each job: a POST of the job data as JSON with
 * CloudEvents headers. A 2xx answer completes the job with the body as its return value;
 * anything else fails the attempt and BullMQ retries it per attempts/backoff.
 *
 * Lifecycle: created by the trigger reconciler, update() on redeploy (takes effect for the
 * next job), close() when the trigger or the function goes away.
 */
export class QueueTriggerConsumer {
  private binding: QueueBinding;
  private readonly worker: Worker;
  /** The lock duration this consumer was created with; a change needs a new Worker. */
  readonly lockDuration: number;
  private closing?: Promise<void>;

  constructor(binding: QueueBinding, private readonly deps: QueueConsumerDeps) {
    this.binding = binding;
    const lock = lockOptions(binding.fn.spec.timeoutMs, deps.locks);
    this.lockDuration = lock.lockDuration;
    this.worker = new Worker(binding.trigger.queue, (job) => this.process(job), {
      connection: deps.connection,
      prefix: TRIGGER_QUEUE_PREFIX,
      concurrency: consumerConcurrency(binding),
      ...lock,
    });
    this.worker.on('error', deps.onError);
  }

  get queue(): string {
    return this.binding.trigger.queue;
  }

  waitUntilReady(): Promise<unknown> {
    return this.worker.waitUntilReady();
  }

  /** Points the queue at a new version or trigger settings; jobs in flight finish on the old one. */
  update(binding: QueueBinding): void {
    this.binding = binding;
    const concurrency = consumerConcurrency(binding);
    if (this.worker.concurrency !== concurrency) this.worker.concurrency = concurrency;
  }

  private async process(job: Job): Promise<unknown> {
    const { fn, trigger } = this.binding;
    // A plain producer sets no attempts; the trigger's own then apply. BullMQ decides on a
    // retry from the job's options when the attempt fails, so filling them in here lets
    // its own retry, backoff and failed-set machinery do the rest.
    if ((job.opts.attempts ?? 1) <= 1 && trigger.attempts > 1) {
      job.opts.attempts = trigger.attempts;
      if (trigger.backoff) job.opts.backoff = trigger.backoff;
    }
    const jobId = job.id!;
    const ref: CallJobRef = {
      id: queueCallId(trigger.queue, jobId),
      kind: 'queue',
      functionName: fn.name,
      version: fn.version,
      queue: trigger.queue,
      jobId,
      jobTimestamp: job.timestamp,
      payload: { name: job.name, data: job.data },
    };
    // A job handed out again (its worker died, or an earlier attempt failed) checks whether
    // a previous run already succeeded: that result stands and the function is not called.
    if (job.attemptsStarted > 1 && !(await this.deps.calls.start(ref))) {
      return (await this.deps.calls.result(ref.id) as { returnValue?: unknown } | null)?.returnValue ?? null;
    }
    const attempt = job.attemptsMade + 1;
    const result = await runInvoke(this.deps.processInvoke, {
      callId: attempt > 1 ? `${ref.id}#${attempt}` : ref.id,
      function: fn,
      request: eventRequest(job.data, cloudEventHeaders({ id: jobId, type: CLOUDEVENT_TYPES.queue, source: trigger.queue, time: new Date(job.timestamp) })),
      trigger: 'pubsub',
      enqueuedAt: job.timestamp,
    });
    if (isSuccess(result)) {
      const returnValue = decodeBody(result);
      this.deps.calls.finishLater(ref, { status: 'succeeded', attempts: attempt, httpStatus: result.status, result: { returnValue }, durationMs: result.durationMs });
      return returnValue;
    }
    const message = failureMessage(fn.name, result);
    const last = attempt >= (job.opts.attempts ?? 1);
    await this.deps.calls.finish(ref, { status: last ? 'failed' : 'queued', attempts: attempt, httpStatus: result.status, error: message, durationMs: result.durationMs });
    throw new FunctionFailed(message);
  }

  /** Stops taking jobs and waits for those in flight. May be called twice. */
  close(): Promise<void> {
    return (this.closing ??= this.worker.close());
  }
}
