import { sql } from 'drizzle-orm';
import type { Db } from '@hearth/core/db';
import { WriteBatcher } from './write-batcher.ts';

export type InvocationStatus = 'succeeded' | 'failed' | 'timeout' | 'error' | 'expired';

export interface InvocationRecord {
  id: string;
  functionName: string;
  version: number;
  trigger: string;
  status: InvocationStatus;
  httpStatus?: number;
  cold: boolean;
  durationMs: number;
  error?: string;
  instanceId?: string;
  createdAt: Date;
}

/** An invocations row as the batch statement reads it (column names, JSON values). */
interface Row {
  id: string;
  function_name: string;
  version: number;
  trigger: string;
  status: InvocationStatus;
  http_status: number | null;
  cold: boolean;
  duration_ms: number;
  error: string | null;
  instance_id: string | null;
  created_at: string;
  finished_at: string;
}

/**
 * Records each call in Postgres. A database outage must not fail the call itself, and the
 * call does not wait for the record: rows are written in batches (one commit for many
 * calls), which keeps Postgres' commit latency off every call. flush() before shutdown.
 */
export class InvocationLog {
  private readonly batch: WriteBatcher<Row>;

  constructor(
    private readonly db: Db,
    onError: (err: unknown) => void,
  ) {
    // The batch is one JSON parameter: cheaper for the worker than a multi-row insert built
    // column by column (see CallLog.writeMany).
    this.batch = new WriteBatcher(async (rows) => {
      await this.db.execute(sql`
        insert into invocations (id, function_name, version, trigger, status, http_status, cold, duration_ms, error,
          instance_id, created_at, finished_at)
        select * from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as r(id text, function_name text, version integer,
          trigger text, status text, http_status integer, cold boolean, duration_ms integer, error text, instance_id text,
          created_at timestamptz, finished_at timestamptz)
        on conflict do nothing`);
    }, onError);
  }

  /** Queues the record for the next batch; resolves at once. */
  async record(r: InvocationRecord): Promise<void> {
    this.batch.add({
      id: r.id,
      function_name: r.functionName,
      version: r.version,
      trigger: r.trigger,
      status: r.status,
      http_status: r.httpStatus ?? null,
      cold: r.cold,
      duration_ms: Math.round(r.durationMs),
      error: r.error ?? null,
      instance_id: r.instanceId ?? null,
      created_at: r.createdAt.toISOString(),
      finished_at: new Date().toISOString(),
    });
  }

  /** Writes every record gathered so far. */
  flush(): Promise<void> {
    return this.batch.flush();
  }
}
