import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import type { Db } from '../db/index.ts';
import { PostgresSpanExporter } from './postgres-span-exporter.ts';

export interface TelemetryOptions {
  /** service.name of every span this process makes: `hearth-gateway`, `hearth-worker`. */
  service: string;
  /** The span store; without it spans go only to OTLP (if configured). */
  db?: Db;
  /** OTLP/HTTP base endpoint (config.otlpEndpoint, from OTEL_EXPORTER_OTLP_ENDPOINT); `/v1/traces` is appended. */
  otlpEndpoint?: string;
  /** How long spans wait to be batched; default 1000 ms so a trace shows up in the store about a second after the call. */
  scheduledDelayMillis?: number;
  /** Export failures (span store down, collector unreachable). They never reach the traced code. */
  onError?: (err: unknown) => void;
}

let provider: NodeTracerProvider | undefined;
let shuttingDown: Promise<void> | undefined;

/** OTLP/HTTP puts traces under `/v1/traces` of the base endpoint; a more specific variable wins, as in OpenTelemetry's SDKs. */
function otlpTracesUrl(endpoint: string): string | undefined {
  if (process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return undefined;
  return `${endpoint.replace(/\/+$/, '')}/v1/traces`;
}

/**
 * Registers the process's tracer provider (AsyncLocalStorage context, W3C propagation) with
 * a batching exporter to the Postgres span store and, when an OTLP endpoint is configured,
 * a second one to it, as users of Jaeger, Tempo or Honeycomb expect. Call once at start;
 * a second call is ignored. Until it runs, every span is a no-op.
 */
export function setupTelemetry(opts: TelemetryOptions): void {
  if (provider) return;
  const batch = { scheduledDelayMillis: opts.scheduledDelayMillis ?? 1000, maxExportBatchSize: 512, maxQueueSize: 8192 };
  const processors: SpanProcessor[] = [];
  if (opts.db) processors.push(new BatchSpanProcessor(new PostgresSpanExporter(opts.db, opts.onError), batch));
  if (opts.otlpEndpoint) {
    const url = otlpTracesUrl(opts.otlpEndpoint);
    // Headers (OTEL_EXPORTER_OTLP_HEADERS, e.g. Honeycomb's team key) come from the environment, read by the exporter.
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter(url ? { url } : {}), batch));
  }
  provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': opts.service, 'service.namespace': 'hearth' }),
    spanProcessors: processors,
  });
  provider.register();
}

/** Exports every span ended so far (both exporters). Resolves even when an export fails. */
export async function flushTelemetry(): Promise<void> {
  await provider?.forceFlush().catch(() => {});
}

/**
 * Flushes and stops the exporters. Call on shutdown after the last traced work, before the
 * database closes. Safe to call twice and without setupTelemetry().
 */
export function shutdownTelemetry(): Promise<void> {
  return (shuttingDown ??= provider ? provider.shutdown().catch(() => {}) : Promise.resolve());
}
