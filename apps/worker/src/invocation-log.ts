import { schema, type Db } from '@hearth/core/db';
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

/**
 * Records each call in Postgres. A database outage must not fail the call itself, and the
 * call does not wait for the record: rows are written in batches (one commit for many
 * calls), which keeps Postgres' commit latency off every call. flush() before shutdown.
 */
export class InvocationLog {
  private readonly batch: WriteBatcher<typeof schema.invocations.$inferInsert>;

  constructor(
    private readonly db: Db,
    onError: (err: unknown) => void,
  ) {
    this.batch = new WriteBatcher(async (rows) => {
      await this.db.insert(schema.invocations).values(rows).onConflictDoNothing();
    }, onError);
  }

  /** Queues the record for the next batch; resolves at once. */
  async record(r: InvocationRecord): Promise<void> {
    this.batch.add({
      id: r.id,
      functionName: r.functionName,
      version: r.version,
      trigger: r.trigger,
      status: r.status,
      httpStatus: r.httpStatus ?? null,
      cold: r.cold,
      durationMs: Math.round(r.durationMs),
      error: r.error ?? null,
      instanceId: r.instanceId ?? null,
      createdAt: r.createdAt,
      finishedAt: new Date(),
    });
  }

  /** Writes every record gathered so far. */
  flush(): Promise<void> {
    return this.batch.flush();
  }
}
