import { randomBytes } from 'node:crypto';
import { Worker, type ConnectionOptions, type Job } from 'bullmq';
import {
  CLOUDEVENT_BATCH_CONTENT_TYPE,
  CLOUDEVENT_TYPES,
  TRIGGER_QUEUE_PREFIX,
  cloudEventHeaders,
  queueCallId,
  structuredCloudEvent,
  type QueueTrigger,
} from '@hearth/core';
import type { CallLog, CallJobRef } from './call-log.ts';
import type { CurrentFunction } from './function-catalog.ts';
import { EventBatcher } from './event-batcher.ts';
import { batchAnswers, eventAnswer, eventRequest, runInvoke, type EventAnswer, type ProcessInvoke } from './event-invoke.ts';
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

/** Calls in flight per worker process. */
const callConcurrency = (b: QueueBinding) => b.trigger.concurrency ?? 1;
const batchSize = (b: QueueBinding) => b.trigger.batchSize ?? 1;

/**
 * How many jobs one worker process takes from the queue: one per call, or with batches
 * enough for the calls in flight plus one batch gathering while they run, so the next
 * call goes out full.
 */
export const consumerConcurrency = (b: QueueBinding) => (batchSize(b) > 1 ? (callConcurrency(b) + 1) * batchSize(b) : callConcurrency(b));

/**
 * Consumes one trigger queue (BullMQ's default prefix, so any plain producer reaches it)
 * and calls the bound function with each job: a POST of the job data as JSON with
 * CloudEvents headers, or with `batchSize` > 1 several jobs per call as a CloudEvents batch
 * (batchAnswers). A 2xx answer completes the job with the body as its return value;
 * anything else fails the attempt and BullMQ retries it per attempts/backoff. Each job of a
 * batch completes, fails and retries on its own.
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

  private readonly batches = new EventBatcher<Job, EventAnswer>(
    (jobs) => this.invokeBatch(jobs),
    () => ({ size: batchSize(this.binding), calls: callConcurrency(this.binding) }),
  );

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
    const answer = batchSize(this.binding) > 1 ? await this.batches.submit(job) : await this.invokeOne(job, ref.id, attempt);
    const { httpStatus, durationMs } = answer;
    if (answer.ok) {
      const { returnValue } = answer;
      this.deps.calls.finishLater(ref, { status: 'succeeded', attempts: attempt, httpStatus, result: { returnValue }, durationMs });
      return returnValue;
    }
    const last = attempt >= (job.opts.attempts ?? 1);
    await this.deps.calls.finish(ref, { status: last ? 'failed' : 'queued', attempts: attempt, httpStatus, error: answer.message, durationMs });
    throw new FunctionFailed(answer.message);
  }

  /** One job, one call: a POST of the job data with CloudEvents headers (binary mode). */
  private async invokeOne(job: Job, callId: string, attempt: number): Promise<EventAnswer> {
    const { fn, trigger } = this.binding;
    const result = await runInvoke(this.deps.processInvoke, {
      callId: attempt > 1 ? `${callId}#${attempt}` : callId,
      function: fn,
      request: eventRequest(job.data, cloudEventHeaders({ id: job.id!, type: CLOUDEVENT_TYPES.queue, source: trigger.queue, time: new Date(job.timestamp) })),
      trigger: 'pubsub',
      enqueuedAt: job.timestamp,
    });
    return eventAnswer(fn.name, result);
  }

  /**
   * Several jobs, one call: a POST of a CloudEvents batch (a JSON array of events, each with
   * its job's id and data). One function run costs the same whatever it carries, so under
   * load this is what lets a queue go faster than one HTTP round trip per job.
   */
  private async invokeBatch(jobs: Job[]): Promise<EventAnswer[]> {
    const { fn, trigger } = this.binding;
    const events = jobs.map((job) =>
      structuredCloudEvent({ id: job.id!, type: CLOUDEVENT_TYPES.queue, source: trigger.queue, time: new Date(job.timestamp), data: job.data }),
    );
    const result = await runInvoke(this.deps.processInvoke, {
      // A batch is a call of its own (its jobs keep their own records): a fresh id.
      callId: `${trigger.queue}:batch-${randomBytes(6).toString('hex')}`,
      function: fn,
      request: eventRequest(events, { 'content-type': CLOUDEVENT_BATCH_CONTENT_TYPE }),
      trigger: 'pubsub',
      enqueuedAt: Math.min(...jobs.map((j) => j.timestamp)),
    });
    return batchAnswers(fn.name, result, events.map((e) => e.id));
  }

  /** Stops taking jobs and waits for those in flight. May be called twice. */
  close(): Promise<void> {
    return (this.closing ??= this.worker.close());
  }
}
