/**
 * Span names and attribute keys, in one place. Attributes follow OpenTelemetry's FaaS
 * semantic conventions where they exist (faas.*); Hearth's own start kind, isolation and
 * accelerator are hearth.*.
 */
export const SPANS = {
  gatewayInvoke: 'gateway.invoke',
  queueWait: 'queue.wait',
  workerInvoke: 'worker.invoke',
  poolAcquire: 'pool.acquire',
  imagePull: 'image.pull',
  imageUnpack: 'image.unpack',
  sandboxCreate: 'sandbox.create',
  sandboxStart: 'sandbox.start',
  sandboxReady: 'sandbox.ready',
  /** A stem cell becoming one function (its code mounted, its handler loaded): the stemcell path's only phase. */
  sandboxSpecialize: 'sandbox.specialize',
  functionInvoke: 'function.invoke',
} as const;

/** The phases of a cold start, in the order they happen. */
export const COLD_START_PHASES = [SPANS.imagePull, SPANS.imageUnpack, SPANS.sandboxCreate, SPANS.sandboxStart, SPANS.sandboxReady] as const;

export const ATTR = {
  faasName: 'faas.name',
  faasVersion: 'faas.version',
  faasColdstart: 'faas.coldstart',
  faasTrigger: 'faas.trigger',
  faasInvocationId: 'faas.invocation_id',
  faasInstance: 'faas.instance',
  faasMaxMemory: 'faas.max_memory',
  start: 'hearth.start',
  isolation: 'hearth.isolation',
  accel: 'hearth.accel',
  imageDigest: 'hearth.image.digest',
} as const;

/** How an instance came to serve a call: reused, specialized from a stem cell, or started from nothing. */
export type StartKind = 'warm' | 'stemcell' | 'cold';
