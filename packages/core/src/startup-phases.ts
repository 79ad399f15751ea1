/**
 * Where a call's time went, phase by phase: the one reading of a trace that the startup
 * chart, the dashboard and `hearth bench startup` share.
 */
import { COLD_START_PHASES, SPANS } from './telemetry/attributes.ts';
import type { TraceInfo } from './trace-info.ts';

/** The phases a call meets, in order. pool.acquire counts only its own time (see phaseTimesMs). */
export const STARTUP_PHASES = [SPANS.queueWait, SPANS.poolAcquire, ...COLD_START_PHASES, SPANS.functionInvoke] as const;
export type StartupPhase = (typeof STARTUP_PHASES)[number];

const PHASE_SET = new Set<string>(STARTUP_PHASES);

/**
 * Each phase's own time in ms, for the phases the trace has: a phase's spans less the phases
 * nested in them (pool.acquire less the cold-start phases below it), so the phases stack to
 * the call without counting anything twice.
 */
export function phaseTimesMs(trace: TraceInfo): Partial<Record<StartupPhase, number>> {
  const out: Partial<Record<StartupPhase, number>> = {};
  for (const phase of STARTUP_PHASES) {
    const own = trace.spans.filter((s) => s.name === phase);
    if (own.length === 0) continue;
    const ids = new Set(own.map((s) => s.spanId));
    const nested = trace.spans.filter((s) => s.parentSpanId && ids.has(s.parentSpanId) && PHASE_SET.has(s.name));
    const us = own.reduce((sum, s) => sum + s.durationUs, 0) - nested.reduce((sum, s) => sum + s.durationUs, 0);
    out[phase] = Math.max(0, us) / 1000;
  }
  return out;
}

/** The whole call in ms as the gateway saw it (or, before the gateway's span arrives, the worker). */
export function callTotalMs(trace: TraceInfo): number | undefined {
  const root = trace.spans.find((s) => s.name === SPANS.gatewayInvoke) ?? trace.spans.find((s) => s.name === SPANS.workerInvoke);
  return root ? root.durationUs / 1000 : undefined;
}

/** The spans every finished call's trace holds: until they are all stored, the trace is not whole. */
export const SPANS_COMPLETE = [SPANS.gatewayInvoke, SPANS.workerInvoke, SPANS.poolAcquire, SPANS.functionInvoke] as const;
