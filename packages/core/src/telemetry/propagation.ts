import { ROOT_CONTEXT, context as apiContext, trace, type Context } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

// A propagator of our own rather than the global one: the format on the wire (job data,
// the sandbox's header) is W3C whatever a host program registers globally.
const w3c = new W3CTraceContextPropagator();

type Carrier = Record<string, string>;
const setter = { set: (carrier: Carrier, key: string, value: string) => void (carrier[key] = value) };
const getter = {
  get: (carrier: Carrier, key: string) => carrier[key],
  keys: (carrier: Carrier) => Object.keys(carrier),
};

/**
 * The W3C `traceparent` of the span in `ctx` (default: the active context), for job data
 * and the sandbox's request header. Undefined when there is no valid span to continue.
 */
export function injectTraceparent(ctx: Context = apiContext.active()): string | undefined {
  if (!trace.getSpanContext(ctx)) return undefined;
  const carrier: Carrier = {};
  w3c.inject(ctx, carrier, setter);
  return carrier.traceparent;
}

/**
 * A context whose parent span is the one a `traceparent` names, so spans started in it
 * join the caller's trace. A missing or malformed value gives `base` (a new trace).
 */
export function contextFromTraceparent(traceparent: string | undefined, base: Context = ROOT_CONTEXT): Context {
  if (!traceparent) return base;
  return w3c.extract(base, { traceparent }, getter);
}
