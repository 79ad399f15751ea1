import { pgTable, text, integer, serial, jsonb, timestamp, boolean, uniqueIndex, index } from 'drizzle-orm/pg-core';
import type { FunctionSpec } from '../spec.ts';

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
