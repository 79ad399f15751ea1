import { and, desc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import { schema, type Db } from '@hearth/core/db';
import { HearthError, type CallKind, type CallStatus } from '@hearth/core';

const { calls } = schema;

export type CallRow = typeof calls.$inferSelect;

/** The statuses `hearth calls ls --failed` shows: the dead letters a user may retry. */
export const DEAD_STATUSES: CallStatus[] = ['failed', 'expired'];

/**
 * The gateway's side of the `calls` table: it records an async call as queued before the
 * job exists, answers GET /calls, and puts a dead call back to queued before a retry.
 */
export class CallStore {
  constructor(private readonly db: Db) {}

  async createQueued(row: { id: string; kind: CallKind; functionName: string; version: number; queue: string; jobId: string; payload: unknown; callbackUrl?: string }): Promise<void> {
    await this.db.insert(calls).values({ ...row, callbackUrl: row.callbackUrl ?? null, status: 'queued', attempts: 0 });
  }

  async get(id: string): Promise<CallRow | undefined> {
    const rows = await this.db.select().from(calls).where(eq(calls.id, id)).limit(1);
    return rows[0];
  }

  async require(id: string): Promise<CallRow> {
    const row = await this.get(id);
    if (!row) throw new HearthError('NOT_FOUND', `call "${id}" not found`);
    return row;
  }

  /** Newest first. */
  async list(filter: { statuses?: CallStatus[]; functionName?: string; limit: number }): Promise<CallRow[]> {
    const where: SQL[] = [];
    if (filter.statuses?.length) where.push(inArray(calls.status, filter.statuses));
    if (filter.functionName) where.push(eq(calls.functionName, filter.functionName));
    return this.db
      .select()
      .from(calls)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(calls.createdAt))
      .limit(filter.limit);
  }

  /**
   * Puts a failed or expired call back to queued, atomically, so two retries of one call
   * enqueue it once. CONFLICT when the call is not dead (a succeeded result is never redone).
   */
  async requeue(id: string): Promise<CallRow> {
    const rows = await this.db
      .update(calls)
      // No job timestamp: the retry's job counts as the same call (attempts go on), not as a reused id.
      .set({ status: 'queued', error: null, finishedAt: null, jobTimestamp: null })
      .where(and(eq(calls.id, id), inArray(calls.status, DEAD_STATUSES)))
      .returning();
    if (rows[0]) return rows[0];
    const row = await this.require(id);
    throw new HearthError('CONFLICT', `call "${id}" is ${row.status}; only failed or expired calls can be retried`);
  }

  /** Undoes requeue() when the job could not be enqueued, so the call shows as dead again. */
  async markFailed(id: string, error: string): Promise<void> {
    await this.db.update(calls).set({ status: 'failed', error, finishedAt: sql`now()` }).where(eq(calls.id, id));
  }
}
