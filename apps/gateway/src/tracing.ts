import { ATTR, SPANS, SpanKind, SpanStatusCode, contextFromTraceparent, failSpan, injectTraceparent, startSpan, type Span } from '@hearth/core/telemetry';
import type { FunctionRecord } from './function-store.ts';

/** What the traced work reports back so the span can say how the call went. */
export interface InvokeOutcome {
  /** The HTTP status the caller gets. */
  status: number;
  cold?: boolean;
  /** warm | stemcell | cold, when the worker says. */
  start?: string;
  /** Hearth's own error (timeout, crash), when it produced the answer. */
  error?: { code: string; message: string };
}

/**
 * Runs one gateway invoke inside a `gateway.invoke` span, the root of the call's trace (or a
 * child of the caller's, when the request carries a `traceparent`). `run` gets the W3C
 * context to put in the job, so the worker's spans join this trace.
 */
export async function traceGatewayInvoke<T extends InvokeOutcome>(
  opts: { fn: FunctionRecord; callId: string; callerTraceparent: string | undefined; mode: 'sync' | 'async' },
  run: (traceparent: string | undefined, span: Span) => Promise<T>,
): Promise<T> {
  const { fn } = opts;
  const { span, ctx } = startSpan(SPANS.gatewayInvoke, {
    parent: contextFromTraceparent(opts.callerTraceparent),
    kind: SpanKind.SERVER,
    attributes: {
      [ATTR.faasName]: fn.name,
      [ATTR.faasVersion]: String(fn.version),
      [ATTR.faasTrigger]: 'http',
      [ATTR.faasInvocationId]: opts.callId,
      [ATTR.faasMaxMemory]: fn.spec.memoryMb * 1024 * 1024,
      [ATTR.isolation]: fn.spec.isolation,
      'hearth.invoke.mode': opts.mode,
    },
  });
  try {
    const outcome = await run(injectTraceparent(ctx), span);
    span.setAttribute('http.response.status_code', outcome.status);
    if (outcome.cold !== undefined) span.setAttribute(ATTR.faasColdstart, outcome.cold);
    if (outcome.start) span.setAttribute(ATTR.start, outcome.start);
    if (outcome.error) span.setStatus({ code: SpanStatusCode.ERROR, message: `${outcome.error.code}: ${outcome.error.message}` });
    else if (outcome.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `function answered ${outcome.status}` });
    return outcome;
  } catch (err) {
    failSpan(span, err);
    throw err;
  } finally {
    span.end();
  }
}
