import { createHash } from 'node:crypto';
import type { FunctionSpec } from './spec.ts';
import { QUEUES } from './jobs.ts';

export type FunctionTrigger = FunctionSpec['triggers'][number];
export type QueueTrigger = Extract<FunctionTrigger, { queue: string }>;
export type CronTrigger = Extract<FunctionTrigger, { cron: string }>;

export const queueTriggers = (spec: FunctionSpec): QueueTrigger[] => spec.triggers.filter((t): t is QueueTrigger => 'queue' in t);
export const cronTriggers = (spec: FunctionSpec): CronTrigger[] => spec.triggers.filter((t): t is CronTrigger => 'cron' in t);

/**
 * Trigger queues use BullMQ's default key prefix, not HEARTH_QUEUE_PREFIX: a producer that
 * knows only the queue name (`new Queue(NAME, { connection })`) must reach the function.
 */
export const TRIGGER_QUEUE_PREFIX = 'bull';

/** Redis pub/sub channel on which the gateway says "functions or their triggers changed". */
export const triggersChannel = (queuePrefix: string) => `${queuePrefix}:triggers-changed`;

/**
 * Async calls and cron ticks are spread over one queue per lock class. BullMQ sets a job's
 * lock duration per Worker, so each class has its own Worker whose lock outlasts the
 * slowest function of the class: a slow call is never taken for stalled and run twice,
 * while a short one is recovered quickly when its worker dies.
 */
export const ASYNC_LOCK_CLASSES_SEC = [10, 60, 300, 900] as const;

/** The smallest class that holds `timeoutMs` (spec allows at most 15 min, the largest class). */
export function asyncLockClassSec(timeoutMs: number): number {
  return ASYNC_LOCK_CLASSES_SEC.find((s) => s * 1000 >= timeoutMs) ?? 900;
}

export const asyncQueueName = (classSec: number) => `${QUEUES.asyncPrefix}${classSec}s`;
export const asyncQueueFor = (timeoutMs: number) => asyncQueueName(asyncLockClassSec(timeoutMs));

/**
 * Job scheduler id of a cron trigger. It hashes the pattern and zone, so a changed trigger is
 * a new scheduler (added) and the old one is removed; nothing is ever updated in place.
 */
export function cronSchedulerId(functionName: string, trigger: CronTrigger): string {
  const hash = createHash('sha256').update(`${trigger.cron}\n${trigger.tz ?? ''}`).digest('hex').slice(0, 12);
  return `${functionName}.${hash}`;
}

/** CloudEvents `type` of the events Hearth sends to functions. */
export const CLOUDEVENT_TYPES = {
  queue: 'dev.hearth.queue.job',
  cron: 'dev.hearth.cron.tick',
} as const;

/** CloudEvents 1.0 binary-mode headers (https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/http-protocol-binding.md). */
export function cloudEventHeaders(e: { id: string; type: string; source: string; time?: Date }): Record<string, string> {
  return {
    'ce-specversion': '1.0',
    'ce-id': e.id,
    'ce-type': e.type,
    'ce-source': e.source,
    'ce-time': (e.time ?? new Date()).toISOString(),
  };
}

/** CloudEvents 1.0 batched content mode: the body is a JSON array of events in structured form. */
export const CLOUDEVENT_BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json';

/** One event of a batch: CloudEvents 1.0 JSON format, the job data as `data`. */
export interface StructuredCloudEvent {
  specversion: '1.0';
  id: string;
  type: string;
  source: string;
  time: string;
  datacontenttype: 'application/json';
  data: unknown;
}

export function structuredCloudEvent(e: { id: string; type: string; source: string; time?: Date; data: unknown }): StructuredCloudEvent {
  return {
    specversion: '1.0',
    id: e.id,
    type: e.type,
    source: e.source,
    time: (e.time ?? new Date()).toISOString(),
    datacontenttype: 'application/json',
    data: e.data ?? null,
  };
}

/** Where an async call, queue job or cron tick stands; kept in Postgres (`calls`). */
export const CALL_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'expired'] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];
export type CallKind = 'async' | 'queue' | 'cron';

/** Call id of a job on a trigger queue: BullMQ's job id, qualified by its queue (queue names have no ':'). */
export const queueCallId = (queue: string, jobId: string) => `${queue}:${jobId}`;
