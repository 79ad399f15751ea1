import { pgTable, text, integer, serial, jsonb, timestamp, boolean, uniqueIndex, index, bigint } from 'drizzle-orm/pg-core';
import type { FunctionSpec } from '../spec.ts';
import type { CallKind, CallStatus } from '../triggers.ts';

/** A function: a name users call, and the version that serves it now. */
export const functions = pgTable('functions', {
  name: text('name').primaryKey(),
  currentVersion: integer('current_version'),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/** Every deploy makes a version: an image pinned by digest and the spec it runs with. */
export const versions = pgTable(
  'versions',
  {
    id: serial('id').primaryKey(),
    functionName: text('function_name')
      .notNull()
      .references(() => functions.name, { onDelete: 'cascade' }),
    version: integer('version').notNull(),
    imageRef: text('image_ref').notNull(),
    imageDigest: text('image_digest').notNull(),
    spec: jsonb('spec').$type<FunctionSpec>().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('versions_function_version').on(t.functionName, t.version)],
);

/** One row per call. Kept after the function is deleted, so history survives. */
export const invocations = pgTable(
  'invocations',
  {
    id: text('id').primaryKey(),
    functionName: text('function_name').notNull(),
    version: integer('version').notNull(),
    trigger: text('trigger').notNull(),
    status: text('status').notNull(),
    httpStatus: integer('http_status'),
    cold: boolean('cold').notNull().default(false),
    durationMs: integer('duration_ms'),
    error: text('error'),
    instanceId: text('instance_id'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [index('invocations_function_created').on(t.functionName, t.createdAt)],
);

/**
 * Calls that nobody waits on: async HTTP calls, queue-trigger jobs and cron ticks. The row
 * is where their result or failure is kept (GET /calls/:id, `hearth calls`), and the
 * payload is what `hearth calls retry` re-enqueues. A succeeded row is final: a rerun of
 * the same job (stalled, retried) never overwrites it.
 */
export const calls = pgTable(
  'calls',
  {
    /** Async: the X-Call-Id (uuid). Queue and cron: `<queue>:<BullMQ job id>`. */
    id: text('id').primaryKey(),
    kind: text('kind').$type<CallKind>().notNull(),
    functionName: text('function_name').notNull(),
    version: integer('version'),
    /** The BullMQ queue and job that carry the call. */
    queue: text('queue').notNull(),
    jobId: text('job_id').notNull(),
    /** BullMQ's job timestamp: a job id reused after its job was removed is another job. */
    jobTimestamp: bigint('job_timestamp', { mode: 'number' }),
    status: text('status').$type<CallStatus>().notNull(),
    attempts: integer('attempts').notNull().default(0),
    /** What re-enqueues the call: the async job, or the queue job's name and data. */
    payload: jsonb('payload').notNull(),
    callbackUrl: text('callback_url'),
    httpStatus: integer('http_status'),
    /** Async/cron: { status, headers, bodyBase64 }. Queue: { returnValue }. */
    result: jsonb('result'),
    error: text('error'),
    durationMs: integer('duration_ms'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
  },
  (t) => [index('calls_created').on(t.createdAt), index('calls_status_created').on(t.status, t.createdAt), index('calls_function_created').on(t.functionName, t.createdAt)],
);

/**
 * `hearth scale NAME --min N --max M`: the function's scale, kept apart from its versions so
 * that changing it needs no deploy. Null fields fall back to the current version's spec.
 */
export const functionScale = pgTable('function_scale', {
  functionName: text('function_name')
    .primaryKey()
    .references(() => functions.name, { onDelete: 'cascade' }),
  minWarm: integer('min_warm'),
  maxInstances: integer('max_instances'),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * API keys for the management API. Only a hash of the key is kept; `prefix` (the key's
 * first characters, not secret) lets a user tell keys apart in `hearth keys ls`.
 */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    prefix: text('prefix').notNull(),
    hash: text('hash').notNull(),
    role: text('role').notNull().default('admin'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('api_keys_hash').on(t.hash)],
);

/** A function's secrets, encrypted at rest (AES-256-GCM); mounted as files under /run/secrets. */
export const secrets = pgTable(
  'secrets',
  {
    /** No foreign key: secrets may be set before the first deploy; `rm` deletes them. */
    functionName: text('function_name').notNull(),
    key: text('key').notNull(),
    /** base64 of iv (12 bytes) + auth tag (16 bytes) + ciphertext. */
    sealed: text('sealed').notNull(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex('secrets_function_key').on(t.functionName, t.key)],
);

/** The span store: OpenTelemetry spans as the batching exporter writes them. */
export const spans = pgTable(
  'spans',
  {
    traceId: text('trace_id').notNull(),
    spanId: text('span_id').primaryKey(),
    parentSpanId: text('parent_span_id'),
    name: text('name').notNull(),
    service: text('service').notNull(),
    /** Microseconds since the epoch: the waterfall needs better than millisecond offsets. */
    startUs: bigint('start_us', { mode: 'number' }).notNull(),
    durationUs: bigint('duration_us', { mode: 'number' }).notNull(),
    /** 0 unset, 1 ok, 2 error (OpenTelemetry's SpanStatusCode). */
    statusCode: integer('status_code').notNull().default(0),
    statusMessage: text('status_message'),
    functionName: text('function_name'),
    attributes: jsonb('attributes').$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [index('spans_trace').on(t.traceId), index('spans_function_start').on(t.functionName, t.startUs), index('spans_start').on(t.startUs)],
);
