import {
  ATTR,
  SPANS,
  SpanKind,
  SpanStatusCode,
  contextFromTraceparent,
  failSpan,
  injectTraceparent,
  inSpan,
  recordSpan,
  startSpan,
  context,
  type Attributes,
  type Context,
  type Span,
  type StartKind,
} from '@hearth/core/telemetry';
import type { InvokeJob } from '@hearth/core';

/**
 * The worker's half of a call's trace. The gateway's `gateway.invoke` span is the parent
 * (its W3C context rides in the job); below it the worker records `queue.wait` and
 * `worker.invoke`, and below that `pool.acquire` (with the cold-start phases) and
 * `function.invoke`.
 *
 * queue.wait is recorded here, after the fact, from the job's `enqueuedAt` to the moment the
 * worker took the job: the gateway cannot see that moment without a QueueEvents round trip
 * per call, and a span must be ended by the process that started it.
 */
export interface WorkerTrace {
  span: Span;
  /** The context of worker.invoke: pass it to the helpers below. */
  ctx: Context;
  /** Attributes every worker span of this call carries (so the span store knows the function). */
  common: Attributes;
}

/** Records queue.wait (when the call came with a trace) and opens worker.invoke. End it with endWorkerInvoke(). */
export function startWorkerInvoke(job: InvokeJob, takenAt: number = Date.now()): WorkerTrace {
  const fn = job.function;
  const common: Attributes = { [ATTR.faasName]: fn.name, [ATTR.faasVersion]: String(fn.version), [ATTR.faasInvocationId]: job.callId };
  const parent = contextFromTraceparent(job.traceparent);
  if (job.traceparent) {
    recordSpan(SPANS.queueWait, { parent, kind: SpanKind.CONSUMER, start: job.enqueuedAt, end: Math.max(takenAt, job.enqueuedAt), attributes: { ...common, 'messaging.system': 'bullmq' } });
  }
  const { span, ctx } = startSpan(SPANS.workerInvoke, {
    parent,
    kind: SpanKind.CONSUMER,
    startTime: takenAt,
    attributes: {
      ...common,
      [ATTR.faasTrigger]: job.trigger,
      [ATTR.faasMaxMemory]: fn.spec.memoryMb * 1024 * 1024,
      [ATTR.isolation]: fn.spec.isolation,
      [ATTR.imageDigest]: fn.imageDigest,
    },
  });
  return { span, ctx, common };
}

/** What withPoolAcquireSpan needs of a pool lease (pool/instance-pool.ts's Lease). */
export interface TracedLease {
  start: StartKind;
  instance: { id: string; sandbox?: unknown; specialize?: { mountMs: number; loadMs: number } };
}

/**
 * Runs the pool acquire inside `pool.acquire`, active for everything it awaits: a cold
 * start the acquire sets off records image.pull and image.unpack below it (image-cache.ts).
 * When the lease is a cold start, the sandbox's own start phases (sandbox.create,
 * sandbox.start, sandbox.ready) are recorded below it too, ending when the acquire returns:
 * the pool hands a new instance to its waiting calls the moment it is ready.
 */
export function withPoolAcquireSpan<T extends TracedLease>(trace: WorkerTrace, acquire: () => Promise<T>): Promise<T> {
  return inSpan(SPANS.poolAcquire, { parent: trace.ctx, attributes: trace.common }, async (span) => {
    const lease = await acquire();
    span.setAttribute(ATTR.start, lease.start);
    span.setAttribute(ATTR.faasInstance, lease.instance.id);
    // A microVM says which accelerator it got (kvm, or tcg when KVM does not work here).
    const accel = (lease.instance.sandbox as { accel?: unknown } | undefined)?.accel;
    const extra: Attributes = typeof accel === 'string' ? { [ATTR.accel]: accel } : {};
    span.setAttributes(extra);
    trace.span.setAttributes(extra);
    const timings = lease.start === 'cold' ? startTimingsOf(lease.instance.sandbox) : undefined;
    if (timings) recordColdStartPhases(timings, { attributes: { ...trace.common, ...extra }, instanceId: lease.instance.id });
    // A stem cell was started long before; what this call paid is its specialization.
    const specialize = lease.start === 'stemcell' ? lease.instance.specialize : undefined;
    if (specialize) {
      const end = Date.now();
      recordSpan(SPANS.sandboxSpecialize, {
        start: end - specialize.mountMs - specialize.loadMs,
        end,
        attributes: { ...trace.common, [ATTR.faasInstance]: lease.instance.id, 'hearth.specialize.mount_ms': specialize.mountMs, 'hearth.specialize.load_ms': specialize.loadMs },
      });
    }
    return lease;
  });
}

/** The three phases of a sandbox start as RuncSandbox measures them (`startTimings`). */
export interface SandboxStartTimings {
  prepareMs: number;
  runcMs: number;
  readyMs: number;
}

/**
 * Records sandbox.create, sandbox.start and sandbox.ready after the fact, back to back,
 * ending at `readyAt` (epoch ms, default now: call it right when the sandbox became ready,
 * or when the acquire that waited for it returned). `parent` is the call's pool.acquire
 * context (default: the active context).
 */
export function recordColdStartPhases(timings: SandboxStartTimings, opts: { parent?: Context; readyAt?: number; attributes?: Attributes; instanceId?: string } = {}): void {
  const end = opts.readyAt ?? Date.now();
  const parent = opts.parent ?? context.active();
  const attributes: Attributes = { ...opts.attributes, ...(opts.instanceId ? { [ATTR.faasInstance]: opts.instanceId } : {}) };
  let at = end - timings.prepareMs - timings.runcMs - timings.readyMs;
  for (const [name, ms] of [
    [SPANS.sandboxCreate, timings.prepareMs],
    [SPANS.sandboxStart, timings.runcMs],
    [SPANS.sandboxReady, timings.readyMs],
  ] as const) {
    recordSpan(name, { parent, start: at, end: at + ms, attributes });
    at += ms;
  }
}

/**
 * A sandbox's start timings as the three phases, else undefined. RuncSandbox measures them
 * as such; a microVM's (VmSandbox) map onto them: initramfs + accelerator probe = create,
 * qemu spawn = start, boot until the socket accepts = ready.
 */
export function startTimingsOf(sandbox: unknown): SandboxStartTimings | undefined {
  const t = (sandbox as { startTimings?: Record<string, unknown> } | undefined)?.startTimings;
  if (!t) return undefined;
  const n = (key: string) => (typeof t[key] === 'number' ? (t[key] as number) : undefined);
  const runc = [n('prepareMs'), n('runcMs'), n('readyMs')];
  const vm = [n('initramfsMs'), n('accelMs'), n('qemuSpawnMs'), n('bootMs')];
  let timings: SandboxStartTimings | undefined;
  if (runc.every((v) => v !== undefined)) timings = { prepareMs: runc[0]!, runcMs: runc[1]!, readyMs: runc[2]! };
  else if (vm.every((v) => v !== undefined)) timings = { prepareMs: vm[0]! + vm[1]!, runcMs: vm[2]!, readyMs: vm[3]! };
  if (!timings || timings.prepareMs + timings.runcMs + timings.readyMs === 0) return undefined;
  return timings;
}

/**
 * Runs the handler call inside `function.invoke`; `invoke` gets the traceparent to send
 * into the sandbox, so a function that traces itself continues this trace.
 */
export function withFunctionInvokeSpan<T>(trace: WorkerTrace, attributes: Attributes, invoke: (traceparent: string | undefined) => Promise<T>): Promise<T> {
  return inSpan(SPANS.functionInvoke, { parent: trace.ctx, kind: SpanKind.CLIENT, attributes: { ...trace.common, ...attributes } }, (_span, ctx) =>
    invoke(injectTraceparent(ctx)),
  );
}

/** Closes worker.invoke with how the call went: start kind, instance, HTTP status or Hearth's error. */
export function endWorkerInvoke(trace: WorkerTrace, outcome: { start?: StartKind; instanceId?: string; status?: number; error?: { code: string; message: string } | unknown }): void {
  const { span } = trace;
  if (outcome.start) {
    span.setAttribute(ATTR.start, outcome.start);
    span.setAttribute(ATTR.faasColdstart, outcome.start !== 'warm');
  }
  if (outcome.instanceId) span.setAttribute(ATTR.faasInstance, outcome.instanceId);
  if (outcome.status !== undefined) span.setAttribute('http.response.status_code', outcome.status);
  const error = outcome.error as { code?: string; message?: string } | undefined;
  if (error instanceof Error) failSpan(span, error);
  else if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: error.code ? `${error.code}: ${error.message}` : String(error.message) });
  else if (outcome.status !== undefined && outcome.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: `function answered ${outcome.status}` });
  span.end();
}
