import { schema, type Db } from '@hearth/core/db';

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

/** Records each call in Postgres. A database outage must not fail the call itself. */
export class InvocationLog {
  constructor(
    private readonly db: Db,
    private readonly onError: (err: unknown) => void,
  ) {}

  async record(r: InvocationRecord): Promise<void> {
    try {
      await this.db
        .insert(schema.invocations)
        .values({
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
        })
        .onConflictDoNothing();
    } catch (err) {
      this.onError(err);
    }
  }
}
