import { SpanKind, SpanStatusCode, context as apiContext, trace, type Attributes, type Context, type Span, type TimeInput } from '@opentelemetry/api';

/** The tracer every Hearth span comes from; a no-op until setupTelemetry() has run. */
export const tracer = () => trace.getTracer('hearth');

export interface SpanOptions {
  /** The context whose span is the parent; default: the active one. */
  parent?: Context;
  attributes?: Attributes;
  kind?: SpanKind;
  /** Epoch ms (fractions allowed) or a Date; default now. */
  startTime?: TimeInput;
}

/** Starts a span and returns it with the context children should be started in. The caller ends it. */
export function startSpan(name: string, opts: SpanOptions = {}): { span: Span; ctx: Context } {
  const parent = opts.parent ?? apiContext.active();
  const span = tracer().startSpan(
    name,
    { kind: opts.kind ?? SpanKind.INTERNAL, ...(opts.attributes ? { attributes: opts.attributes } : {}), ...(opts.startTime !== undefined ? { startTime: opts.startTime } : {}) },
    parent,
  );
  return { span, ctx: trace.setSpan(parent, span) };
}

/** Marks a span failed with the error's message (and records it as an exception event). */
export function failSpan(span: Span, err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof Error) span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/**
 * Runs `fn` inside a new span (active for everything `fn` awaits) and ends the span when
 * `fn` settles; a throw marks the span failed and is rethrown.
 */
export async function inSpan<T>(name: string, opts: SpanOptions, fn: (span: Span, ctx: Context) => Promise<T>): Promise<T> {
  const { span, ctx } = startSpan(name, opts);
  try {
    return await apiContext.with(ctx, () => fn(span, ctx));
  } catch (err) {
    failSpan(span, err);
    throw err;
  } finally {
    span.end();
  }
}

export interface RecordSpanOptions extends Omit<SpanOptions, 'startTime'> {
  /** Epoch ms (fractions allowed) or a Date. */
  start: TimeInput;
  end: TimeInput;
  /** Marks the span failed. */
  error?: unknown;
}

/**
 * Records a span after the fact, for a phase that was measured elsewhere (a sandbox's start
 * timings, the time a job sat in the queue). Returns the context of the new span so that
 * later phases can hang below it.
 */
export function recordSpan(name: string, opts: RecordSpanOptions): Context {
  const { span, ctx } = startSpan(name, { ...opts, startTime: opts.start });
  if (opts.error !== undefined) failSpan(span, opts.error);
  span.end(opts.end);
  return ctx;
}

/** True when `ctx` (default: the active context) holds a span that records: phases below it are worth recording. */
export function isTracing(ctx: Context = apiContext.active()): boolean {
  return trace.getSpan(ctx)?.isRecording() ?? false;
}
