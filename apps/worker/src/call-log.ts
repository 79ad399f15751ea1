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

  /**
   * One statement for the whole batch, its rows as one JSON parameter: a multi-row insert
   * built through the query builder cost the worker ~0.15 ms of CPU per row, a tenth of
   * its whole work for a queue job (bench/queue-throughput.ts).
   */
  private async writeMany(rows: { ref: CallJobRef; outcome: CallOutcome }[]): Promise<void> {
    // One statement may not touch a row twice: of two records of one call, keep the first.
    const byId = new Map<string, { ref: CallJobRef; outcome: CallOutcome }>();
    for (const row of rows) if (!byId.has(row.ref.id)) byId.set(row.ref.id, row);
    const json = JSON.stringify(
      [...byId.values()].map(({ ref, outcome }) => ({
        id: ref.id,
        kind: ref.kind,
        function_name: ref.functionName,
        version: ref.version ?? null,
        queue: ref.queue,
        job_id: ref.jobId,
        job_timestamp: ref.jobTimestamp,
        payload: ref.payload ?? {},
        callback_url: ref.callbackUrl ?? null,
        status: outcome.status,
        http_status: outcome.httpStatus ?? null,
        result: outcome.result ?? null,
        error: outcome.error ?? null,
        duration_ms: outcome.durationMs === undefined ? null : Math.round(outcome.durationMs),
        attempts: outcome.attempts ?? 1,
      })),
    );
    await this.db.execute(sql`
      insert into calls as c (id, kind, function_name, version, queue, job_id, job_timestamp, payload, callback_url,
        status, http_status, result, error, duration_ms, attempts, started_at, finished_at)
      select id, kind, function_name, version, queue, job_id, job_timestamp, payload, callback_url,
        status, http_status, result, error, duration_ms, attempts, now(), now()
      from jsonb_to_recordset(${json}::jsonb) as r(id text, kind text, function_name text, version integer, queue text,
        job_id text, job_timestamp bigint, payload jsonb, callback_url text, status text, http_status integer,
        result jsonb, error text, duration_ms integer, attempts integer)
      on conflict (id) do update set
        status = excluded.status, http_status = excluded.http_status, result = excluded.result,
        error = excluded.error, duration_ms = excluded.duration_ms, finished_at = excluded.finished_at,
        -- A caller that does not count attempts (async) keeps the count start() made.
        attempts = greatest(c.attempts, excluded.attempts),
        job_timestamp = excluded.job_timestamp, version = excluded.version
      where c.status not in ('succeeded', 'expired') or c.job_timestamp is distinct from excluded.job_timestamp`);
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
