import { z } from 'zod';
import { functionSpecSchema } from './spec.ts';

/**
 * Queue and job names, in one place. BullMQ queue names may not contain ':' (its key
 * separator), so Hearth's own queues use '-' and the key prefix keeps stacks apart.
 */
export const QUEUES = {
  /** Synchronous HTTP invocations. */
  invoke: 'hearth-invoke',
  /**
   * Async calls and cron ticks go to `hearth-async-<class>`, one queue per lock class
   * (see asyncQueueFor in triggers.ts), so a job's lock follows its function's timeout.
   */
  asyncPrefix: 'hearth-async-',
  /** Result deliveries to X-Callback-Url, retried with backoff. */
  callbacks: 'hearth-callbacks',
} as const;

export const JOBS = {
  invoke: 'invoke',
  async: 'async',
  cron: 'cron',
  callback: 'callback',
} as const;

export const TRIGGERS = ['http', 'pubsub', 'timer'] as const;

/** The HTTP request a function sees, as it travels through Redis. */
export const wireRequestSchema = z.object({
  method: z.string().min(1),
  /** The path after /function/NAME, always starting with '/'. */
  path: z.string().startsWith('/'),
  /** The raw query string without '?', or ''. */
  query: z.string(),
  headers: z.record(z.string(), z.string()),
  bodyBase64: z.string(),
});
export type WireRequest = z.infer<typeof wireRequestSchema>;

export const invokeJobSchema = z.object({
  callId: z.string().min(1),
  function: z.object({
    name: z.string(),
    version: z.number().int().positive(),
    imageRef: z.string(),
    imageDigest: z.string().regex(/^sha256:[a-f0-9]{64}$/),
    spec: functionSpecSchema,
  }),
  request: wireRequestSchema,
  trigger: z.enum(TRIGGERS).default('http'),
  enqueuedAt: z.number(),
  /** Epoch ms after which nobody waits for the answer; a worker drops the job instead of running it late. */
  deadline: z.number().optional(),
  /** W3C trace context of the caller's span. */
  traceparent: z.string().optional(),
});
export type InvokeJob = z.infer<typeof invokeJobSchema>;
export type InvokeJobInput = z.input<typeof invokeJobSchema>;

/** What a worker returns for an invoke job (the job's return value). */
export const invokeResultSchema = z.object({
  status: z.number().int(),
  headers: z.record(z.string(), z.string()),
  bodyBase64: z.string(),
  /** True unless a running instance served it (`start` says how it started). */
  cold: z.boolean(),
  /** Which path served the call: a running instance, a specialized stem cell, or a new instance. */
  start: z.enum(['warm', 'stemcell', 'cold']).optional(),
  durationMs: z.number(),
  instanceId: z.string().optional(),
  /** Set when Hearth, not the function, produced the answer (timeout, crash, pull failure). */
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});
export type InvokeResult = z.infer<typeof invokeResultSchema>;

/** An `/async-function/` call: the same pinned invoke, plus where to POST the result. */
export const asyncJobSchema = invokeJobSchema.extend({
  callbackUrl: z.string().url().optional(),
});
export type AsyncJob = z.infer<typeof asyncJobSchema>;
export type AsyncJobInput = z.input<typeof asyncJobSchema>;

/**
 * A cron tick. It names the function only: the tick runs whatever version is current when
 * it fires, so a redeploy needs no scheduler change.
 */
export const cronJobSchema = z.object({
  function: z.string(),
  cron: z.string(),
  tz: z.string().optional(),
});
export type CronJob = z.infer<typeof cronJobSchema>;

/** One delivery of an async result to the caller's X-Callback-Url (OpenFaaS' headers). */
export const callbackJobSchema = z.object({
  url: z.string().url(),
  callId: z.string(),
  functionName: z.string(),
  /** The function's HTTP status, sent as X-Function-Status. */
  status: z.number().int(),
  headers: z.record(z.string(), z.string()),
  bodyBase64: z.string(),
  durationMs: z.number(),
});
export type CallbackJob = z.infer<typeof callbackJobSchema>;
