import { sql } from 'drizzle-orm';
import { schema, type Db } from '@hearth/core/db';
import type { CallKind, CallStatus } from '@hearth/core';
import { WriteBatcher } from './write-batcher.ts';

const { calls } = schema;

/** Which BullMQ job carries a call; the job timestamp tells a reused job id from a rerun. */
export interface CallJobRef {
  id: string;
  kind: CallKind;
  functionName: string;
  version?: number;
  queue: string;
  jobId: string;
  jobTimestamp: number;
  payload: unknown;
  callbackUrl?: string;
}

export interface CallOutcome {
  status: Exclude<CallStatus, 'running'>;
  attempts?: number;
  httpStatus?: number;
  result?: unknown;
  error?: string;
  durationMs?: number;
}

/**
 * A row is final once it says succeeded or expired, for the job that wrote it. A job with
 * the same id but another timestamp is a new job (its id was reused after removal).
 */
const stillOpen = sql`(${calls.status} not in ('succeeded', 'expired') or ${calls.jobTimestamp} is distinct from excluded.job_timestamp)`;

/**
 * The worker's side of the `calls` table. start() claims a call before it runs and
 * finish() records how it ended; neither ever overwrites a succeeded call, so a job that
 * BullMQ hands out again (stalled worker, retry) cannot replace a result already delivered.
 */
export class CallLog {
  private readonly successes: WriteBatcher<{ ref: CallJobRef; outcome: CallOutcome }>;

  constructor(
    private readonly db: Db,
    onError: (err: unknown) => void = () => {},
  ) {
    this.successes = new WriteBatcher((rows) => this.writeMany(rows), onError);
  }

  /**
   * Marks the call running (inserting it when the gateway did not, as for queue jobs).
   * Returns false when the call already succeeded or expired: the job must not run again.
   */
  async start(ref: CallJobRef): Promise<boolean> {
    const rows = await this.db
      .insert(calls)
      .values({ ...this.values(ref), status: 'running', attempts: 1, startedAt: new Date() })
      .onConflictDoUpdate({
        target: calls.id,
        set: {
          status: 'running',
          attempts: sql`case when ${calls.jobTimestamp} is distinct from excluded.job_timestamp and ${calls.jobTimestamp} is not null then 1 else ${calls.attempts} + 1 end`,
          jobTimestamp: sql`excluded.job_timestamp`,
          version: sql`excluded.version`,
          startedAt: sql`now()`,
        },
        setWhere: stillOpen,
      })
      .returning({ id: calls.id });
    return rows.length > 0;
  }

  /** Records the outcome, unless the call already succeeded (then the first result stands). */
  async finish(ref: CallJobRef, outcome: CallOutcome): Promise<void> {
    await this.writeMany([{ ref, outcome }]);
  }

  /**
   * Records a success of a job whose result BullMQ keeps as well (a queue job's return
   * value, a cron tick), in the next batch rather than now: the job completes without
   * waiting for a commit. A crash may lose the record, never the job or its result.
   */
  finishLater(ref: CallJobRef, outcome: CallOutcome): void {
    this.successes.add({ ref, outcome });
  }

  /** Writes the records gathered by finishLater(); call before shutdown. */
  flush(): Promise<void> {
    return this.successes.flush();
  }

  private async writeMany(rows: { ref: CallJobRef; outcome: CallOutcome }[]): Promise<void> {
    // One statement may not touch a row twice: of two records of one call, keep the first.
    const byId = new Map<string, { ref: CallJobRef; outcome: CallOutcome }>();
    for (const row of rows) if (!byId.has(row.ref.id)) byId.set(row.ref.id, row);
    const now = new Date();
    await this.db
      .insert(calls)
      .values(
        [...byId.values()].map(({ ref, outcome }) => ({
          ...this.values(ref),
          status: outcome.status,
          httpStatus: outcome.httpStatus ?? null,
          result: outcome.result ?? null,
          error: outcome.error ?? null,
          durationMs: outcome.durationMs === undefined ? null : Math.round(outcome.durationMs),
          attempts: outcome.attempts ?? 1,
          startedAt: now,
          finishedAt: now,
        })),
      )
      .onConflictDoUpdate({
        target: calls.id,
        set: {
          status: sql`excluded.status`,
          httpStatus: sql`excluded.http_status`,
          result: sql`excluded.result`,
          error: sql`excluded.error`,
          durationMs: sql`excluded.duration_ms`,
          finishedAt: sql`excluded.finished_at`,
          // A caller that does not count attempts (async) keeps the count start() made.
          attempts: sql`greatest(${calls.attempts}, excluded.attempts)`,
          jobTimestamp: sql`excluded.job_timestamp`,
          version: sql`excluded.version`,
        },
        setWhere: stillOpen,
      });
  }

  /** The stored result of a call that already succeeded, for a rerun that must answer the same. */
  async result(id: string): Promise<unknown> {
    const rows = await this.db.select({ result: calls.result }).from(calls).where(sql`${calls.id} = ${id}`).limit(1);
    return rows[0]?.result ?? null;
  }

  private values(ref: CallJobRef) {
    return {
      id: ref.id,
      kind: ref.kind,
      functionName: ref.functionName,
      version: ref.version ?? null,
      queue: ref.queue,
      jobId: ref.jobId,
      jobTimestamp: ref.jobTimestamp,
      payload: ref.payload ?? {},
      callbackUrl: ref.callbackUrl ?? null,
    };
  }
}
