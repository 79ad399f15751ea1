/**
 * Traces as the gateway's `/system/traces` answers them: the contract between the gateway's
 * trace store and the clients that draw waterfalls (`hearth traces`, the dashboard).
 */

/** One span of a trace, placed for a waterfall: its offset from the trace's start and its depth below the root. */
export interface TraceSpan {
  spanId: string;
  parentSpanId: string | null;
  name: string;
  service: string;
  /** Microseconds since the epoch. */
  startUs: number;
  /** Microseconds after the trace's first span started. */
  offsetUs: number;
  durationUs: number;
  depth: number;
  status: 'unset' | 'ok' | 'error';
  statusMessage: string | null;
  attributes: Record<string, unknown>;
}

/** A trace as `/system/traces` answers it: its spans in waterfall order (parents before children, siblings by start). */
export interface TraceInfo {
  traceId: string;
  functionName: string | null;
  startedAt: string;
  startUs: number;
  /** From the first span's start to the last span's end. */
  durationUs: number;
  /** warm | stemcell | cold, from the worker's span, when it has arrived. */
  start: string | null;
  spans: TraceSpan[];
}
