/**
 * Tracing for Hearth's apps: setup and shutdown of the OpenTelemetry SDK with the Postgres
 * span store (and OTLP when configured), W3C propagation through job data and into the
 * sandbox, and helpers to record spans, including phases measured elsewhere.
 */
export { setupTelemetry, flushTelemetry, shutdownTelemetry, type TelemetryOptions } from './setup.ts';
export { injectTraceparent, contextFromTraceparent } from './propagation.ts';
export { tracer, startSpan, inSpan, recordSpan, failSpan, isTracing, type SpanOptions, type RecordSpanOptions } from './record-span.ts';
export { PostgresSpanExporter, spanRow } from './postgres-span-exporter.ts';
export { SPANS, ATTR, COLD_START_PHASES, type StartKind } from './attributes.ts';
export { SpanKind, SpanStatusCode, context, trace, type Context, type Span, type Attributes } from '@opentelemetry/api';
