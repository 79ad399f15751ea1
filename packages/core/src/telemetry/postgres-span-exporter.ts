import { ExportResultCode, hrTimeToMicroseconds, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { sql } from 'drizzle-orm';
import type { Db } from '../db/index.ts';
import { ATTR } from './attributes.ts';

/** One row of `spans`, by column name. */
export interface SpanRow {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  service: string;
  start_us: number;
  duration_us: number;
  status_code: number;
  status_message: string | null;
  function_name: string | null;
  attributes: Record<string, unknown>;
}

/** One span as the span store keeps it: times in microseconds, the function it belongs to pulled out for lookups. */
export function spanRow(span: ReadableSpan): SpanRow {
  const ctx = span.spanContext();
  const fn = span.attributes[ATTR.faasName];
  return {
    trace_id: ctx.traceId,
    span_id: ctx.spanId,
    parent_span_id: span.parentSpanContext?.spanId ?? null,
    name: span.name,
    service: String(span.resource.attributes['service.name'] ?? 'unknown'),
    start_us: Math.round(hrTimeToMicroseconds(span.startTime)),
    duration_us: Math.max(0, Math.round(hrTimeToMicroseconds(span.duration))),
    status_code: span.status.code,
    status_message: span.status.message ?? null,
    function_name: typeof fn === 'string' ? fn : null,
    attributes: { ...span.attributes },
  };
}

/**
 * Writes the batches a BatchSpanProcessor hands it into the `spans` table, one insert per
 * batch. A failed write is reported to `onError` (once per outage, not per
 * batch) and the batch is dropped: tracing must never slow down or fail a call.
 */
export class PostgresSpanExporter implements SpanExporter {
  private readonly inFlight = new Set<Promise<void>>();
  private failing = false;
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    if (this.stopped || spans.length === 0) return done({ code: this.stopped ? ExportResultCode.FAILED : ExportResultCode.SUCCESS });
    const write = this.write(spans).then(
      () => {
        this.failing = false;
        done({ code: ExportResultCode.SUCCESS });
      },
      (err: unknown) => {
        if (!this.failing) this.onError(new Error(`span store: dropped ${spans.length} spans: ${(err as Error).message}`, { cause: err }));
        this.failing = true;
        done({ code: ExportResultCode.FAILED, error: err as Error });
      },
    );
    this.inFlight.add(write);
    void write.finally(() => this.inFlight.delete(write));
  }

  /**
   * The batch is one JSON parameter: a multi-row insert built through the query builder
   * cost the worker about as much CPU per span as the rest of a warm call's bookkeeping.
   * A span exported twice (a retried batch) keeps its first row.
   */
  private async write(spans: ReadableSpan[]): Promise<void> {
    await this.db.execute(sql`
      insert into spans (trace_id, span_id, parent_span_id, name, service, start_us, duration_us, status_code,
        status_message, function_name, attributes)
      select * from jsonb_to_recordset(${JSON.stringify(spans.map(spanRow))}::jsonb) as r(trace_id text, span_id text,
        parent_span_id text, name text, service text, start_us bigint, duration_us bigint, status_code integer,
        status_message text, function_name text, attributes jsonb)
      on conflict do nothing`);
  }

  async forceFlush(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    this.stopped = true;
  }
}
