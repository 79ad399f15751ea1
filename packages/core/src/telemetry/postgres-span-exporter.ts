import { ExportResultCode, hrTimeToMicroseconds, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { schema, type Db } from '../db/index.ts';
import { ATTR } from './attributes.ts';

type SpanRow = typeof schema.spans.$inferInsert;

/** One span as the span store keeps it: times in microseconds, the function it belongs to pulled out for lookups. */
export function spanRow(span: ReadableSpan): SpanRow {
  const ctx = span.spanContext();
  const fn = span.attributes[ATTR.faasName];
  return {
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? null,
    name: span.name,
    service: String(span.resource.attributes['service.name'] ?? 'unknown'),
    startUs: Math.round(hrTimeToMicroseconds(span.startTime)),
    durationUs: Math.max(0, Math.round(hrTimeToMicroseconds(span.duration))),
    statusCode: span.status.code,
    statusMessage: span.status.message ?? null,
    functionName: typeof fn === 'string' ? fn : null,
    attributes: { ...span.attributes },
  };
}

/**
 * Writes the batches a BatchSpanProcessor hands it into the `spans` table, one multi-row
 * insert per batch. A failed write is reported to `onError` (once per outage, not per
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

  private async write(spans: ReadableSpan[]): Promise<void> {
    // A span exported twice (a retried batch) keeps its first row.
    await this.db.insert(schema.spans).values(spans.map(spanRow)).onConflictDoNothing();
  }

  async forceFlush(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    this.stopped = true;
  }
}
