/**
 * Cold starts through the real path (gateway → queue → worker → pool → sandbox), each read
 * back from its own trace. A run deploys a bench copy of the function under its own name, so
 * the user's function and its warm instances are never touched.
 */
import { randomBytes } from 'node:crypto';
import { callTotalMs, HearthError, isHearthError, phaseTimesMs, SPANS_COMPLETE, type FunctionSpec, type StartupPhase, type TraceInfo, type TraceSpan } from '@hearth/core';
import type { FunctionInfo, GatewayClient } from '../api-client.ts';

/**
 * What is started: `container` and `vm` are cold starts of the function's image in that
 * isolation; `stemcell` is a container start served by a prewarmed stem cell, the path a
 * node function's first call takes by default.
 */
export const BENCH_ISOLATIONS = ['container', 'vm', 'stemcell'] as const;
export type BenchIsolation = (typeof BENCH_ISOLATIONS)[number];

/** One measured start, as its trace tells it. */
export interface StartupSample {
  isolation: BenchIsolation;
  /** How the worker says the instance started: cold or stemcell (warm would mean the run was wasted). */
  start: string;
  /** `kvm` or `tcg` for a vm. */
  accel?: string;
  traceId: string;
  totalMs: number;
  phasesMs: Partial<Record<StartupPhase, number>>;
  spans: TraceSpan[];
}

export interface StartupRunOptions {
  client: GatewayClient;
  fn: FunctionInfo;
  isolation: BenchIsolation;
  /** Measured starts (after one unmeasured start that pulls, unpacks and caches the image). */
  runs: number;
  onProgress?: (line: string) => void;
}

/** The name of the bench copy: `NAME-startup-ISOLATION`, trimmed to a valid function name. */
export function benchFunctionName(name: string, isolation: BenchIsolation): string {
  return `${name.slice(0, 63 - `-startup-${isolation}`.length)}-startup-${isolation}`;
}

/** The least call timeout of a bench copy: see benchSpec. */
export const BENCH_MIN_TIMEOUT_MS = 60_000;

/**
 * The bench copy's spec. A cold start runs the function's own image as `runtime: image`, which
 * no stem cell serves; every version has at most one instance, so nothing else runs beside it.
 * Its timeout is at least a minute: the bench measures starts, and the first request into a
 * microVM without KVM (TCG) can take seconds on a busy host, past a short function timeout.
 */
export function benchSpec(fn: FunctionInfo, isolation: BenchIsolation): FunctionSpec {
  const { handler: _handler, image: _image, ...rest } = fn.spec;
  const base = {
    ...rest,
    name: benchFunctionName(fn.name, isolation),
    triggers: [],
    scale: { minWarm: 0, maxInstances: 1, idleTtlSec: 60 },
    timeoutMs: Math.max(fn.spec.timeoutMs, BENCH_MIN_TIMEOUT_MS),
  };
  if (isolation === 'stemcell') return { ...fn.spec, ...base, isolation: 'container' };
  return { ...base, runtime: 'image', image: fn.image, isolation, egress: isolation === 'vm' ? false : fn.spec.egress };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until no instance of `name` is left, so one start never shares the machine with the last one's stop. */
async function waitForNoInstances(client: GatewayClient, name: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await client.instances(name)).instances.length > 0) {
    if (Date.now() > deadline) throw new HearthError('TIMEOUT', `instances of ${name} were not released within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

/** Polls until every stem cell a worker starts is ready, so a stemcell run does not fall back to cold. */
async function waitForStemCells(client: GatewayClient, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { workers } = await client.instances();
    if (workers.some((w) => Object.values(w.stemCells).some((c) => c.ready > 0 && c.starting === 0))) return;
    if (Date.now() > deadline) return;
    await sleep(200);
  }
}

/** Polls the span store until the trace holds the whole call (the exporters flush in batches). */
async function readTrace(client: GatewayClient, traceId: string, timeoutMs = 30_000): Promise<TraceInfo> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const trace = await client.trace(traceId);
      if (SPANS_COMPLETE.every((name) => trace.spans.some((s) => s.name === name))) return trace;
    } catch (err) {
      if (!isHearthError(err, 'NOT_FOUND')) throw err;
    }
    if (Date.now() > deadline) throw new HearthError('TIMEOUT', `trace ${traceId} did not reach the span store within ${timeoutMs / 1000} s; is the worker's span store writing?`);
    await sleep(250);
  }
}

/** One call with a trace id of our own, so its trace can be read back. */
async function tracedCall(client: GatewayClient, name: string, isolation: BenchIsolation): Promise<StartupSample> {
  const traceId = randomBytes(16).toString('hex');
  const res = await client.invoke(name, {
    method: 'POST',
    body: new TextEncoder().encode('bench'),
    headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
    withKey: true,
  });
  const body = await res.text();
  if (!res.ok) throw new HearthError('BAD_GATEWAY', `a bench call of ${name} answered ${res.status}: ${body.slice(0, 200)}`);
  const trace = await readTrace(client, traceId);
  const worker = trace.spans.find((s) => s.name === 'worker.invoke');
  const accel = worker?.attributes['hearth.accel'];
  return {
    isolation,
    start: res.headers.get('x-hearth-start') ?? trace.start ?? 'unknown',
    ...(typeof accel === 'string' ? { accel } : {}),
    traceId,
    totalMs: callTotalMs(trace) ?? 0,
    phasesMs: phaseTimesMs(trace),
    spans: trace.spans,
  };
}

/**
 * `runs` starts of one isolation. Each deploys a new version of the bench copy (a version's
 * instances are never reused by the next) and waits until the last one's instance is gone.
 * The bench copy is deleted at the end, also on failure.
 */
export async function measureStartups(opts: StartupRunOptions): Promise<StartupSample[]> {
  const { client, fn, isolation } = opts;
  const spec = benchSpec(fn, isolation);
  const name = spec.name;
  const existing = await client.getFunction(name).catch((err) => (isHearthError(err, 'NOT_FOUND') ? undefined : Promise.reject(err)));
  if (existing && existing.image !== fn.image) {
    throw new HearthError('CONFLICT', `function ${name} exists and runs another image; hearth bench startup deploys its runs under that name: remove it first (hearth rm ${name})`);
  }
  const samples: StartupSample[] = [];
  try {
    for (let i = 0; i <= opts.runs; i++) {
      await client.putFunction(name, { image: fn.image, spec });
      await waitForNoInstances(client, name);
      if (isolation === 'stemcell') await waitForStemCells(client);
      const sample = await tracedCall(client, name, isolation);
      if (i === 0) {
        opts.onProgress?.(`${isolation}: first start (image pulled, unpacked, cached; not counted) ${sample.totalMs.toFixed(0)} ms`);
        continue;
      }
      samples.push(sample);
      opts.onProgress?.(`${isolation}: ${i}/${opts.runs} ${sample.start} ${sample.totalMs.toFixed(0)} ms`);
    }
  } finally {
    await client.deleteFunction(name).catch(() => undefined);
  }
  return samples;
}
