import { desc, eq, inArray, sql } from 'drizzle-orm';
import { schema, type Db } from '@hearth/core/db';
import { callTotalMs, HearthError, phaseTimesMs, STARTUP_PHASES, type TraceInfo, type TraceSpan } from '@hearth/core';
import { ATTR, SPANS } from '@hearth/core/telemetry';

const { spans } = schema;

/** Median phase times of recent calls of one start kind: the startup comparison chart. */
export interface StartupGroup {
  start: string;
  isolation: string;
  count: number;
  /**
   * Median ms per phase, in call order; phases that no call in the group had are left out.
   * Each is the phase's own time: pool.acquire's excludes the cold-start phases below it.
   */
  phasesMs: Record<string, number>;
  /** Median of the whole call as the gateway (or, without it, the worker) saw it. */
  totalMs: number;
}

const STATUS = ['unset', 'ok', 'error'] as const;

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Orders a trace's rows parent-first (depth-first, siblings by start) and places each on the trace's timeline. */
export function toTrace(traceId: string, rows: (typeof spans.$inferSelect)[]): TraceInfo {
  const byStart = [...rows].sort((a, b) => a.startUs - b.startUs || a.name.localeCompare(b.name));
  const ids = new Set(byStart.map((r) => r.spanId));
  const children = new Map<string, typeof byStart>();
  const roots: typeof byStart = [];
  for (const row of byStart) {
    // A parent outside the store (the caller's own span) makes this span a root here.
    if (row.parentSpanId && ids.has(row.parentSpanId)) {
      const list = children.get(row.parentSpanId) ?? [];
      list.push(row);
      children.set(row.parentSpanId, list);
    } else roots.push(row);
  }
  const t0 = byStart[0]?.startUs ?? 0;
  const end = Math.max(...byStart.map((r) => r.startUs + r.durationUs), t0);
  const ordered: TraceSpan[] = [];
  const visit = (row: (typeof byStart)[number], depth: number) => {
    ordered.push({
      spanId: row.spanId,
      parentSpanId: row.parentSpanId,
      name: row.name,
      service: row.service,
      startUs: row.startUs,
      offsetUs: row.startUs - t0,
      durationUs: row.durationUs,
      depth,
      status: STATUS[row.statusCode] ?? 'unset',
      statusMessage: row.statusMessage,
      attributes: row.attributes,
    });
    for (const child of children.get(row.spanId) ?? []) visit(child, depth + 1);
  };
  roots.forEach((r) => visit(r, 0));
  const worker = byStart.find((r) => r.name === SPANS.workerInvoke);
  return {
    traceId,
    functionName: byStart.find((r) => r.functionName)?.functionName ?? null,
    startedAt: new Date(t0 / 1000).toISOString(),
    startUs: t0,
    durationUs: end - t0,
    start: typeof worker?.attributes[ATTR.start] === 'string' ? (worker.attributes[ATTR.start] as string) : null,
    spans: ordered,
  };
}

/** Reads the span store (the `spans` table the worker's and gateway's exporters fill). */
export class TraceStore {
  constructor(private readonly db: Db) {}

  /** The latest traces, newest first, of one function or of all. */
  async recent(opts: { functionName?: string; limit: number }): Promise<TraceInfo[]> {
    const first = sql<number>`min(${spans.startUs})`;
    const ids = await this.db
      .select({ traceId: spans.traceId, first })
      .from(spans)
      .where(opts.functionName ? eq(spans.functionName, opts.functionName) : undefined)
      .groupBy(spans.traceId)
      .orderBy(desc(first))
      .limit(opts.limit);
    if (ids.length === 0) return [];
    const rows = await this.db.select().from(spans).where(inArray(spans.traceId, ids.map((r) => r.traceId)));
    const byTrace = new Map<string, (typeof rows)[number][]>();
    for (const row of rows) byTrace.set(row.traceId, [...(byTrace.get(row.traceId) ?? []), row]);
    return ids.map((r) => toTrace(r.traceId, byTrace.get(r.traceId) ?? []));
  }

  /** NOT_FOUND when no span of the trace has been stored (yet: exporters batch for about a second). */
  async get(traceId: string): Promise<TraceInfo> {
    const rows = await this.db.select().from(spans).where(eq(spans.traceId, traceId));
    if (rows.length === 0) throw new HearthError('NOT_FOUND', `trace ${traceId} not found in the span store (spans arrive about a second after a call)`);
    return toTrace(traceId, rows);
  }

  /**
   * Where recent calls spent their time, by how their instance started (warm, stem cell,
   * cold) and isolation: the median of each phase over the latest `limit` traces.
   */
  async startupComparison(opts: { functionName?: string; limit: number }): Promise<StartupGroup[]> {
    const traces = await this.recent(opts);
    const groups = new Map<string, { start: string; isolation: string; traces: TraceInfo[] }>();
    for (const t of traces) {
      const worker = t.spans.find((s) => s.name === SPANS.workerInvoke);
      if (!worker || !t.start) continue;
      const isolation = String(worker.attributes[ATTR.isolation] ?? 'container');
      const key = `${t.start}/${isolation}`;
      const group = groups.get(key) ?? { start: t.start, isolation, traces: [] };
      group.traces.push(t);
      groups.set(key, group);
    }
    const order = ['warm', 'stemcell', 'cold'];
    return [...groups.values()]
      .sort((a, b) => order.indexOf(a.start) - order.indexOf(b.start) || a.isolation.localeCompare(b.isolation))
      .map((g) => {
        const perTrace = g.traces.map(phaseTimesMs);
        const phasesMs: Record<string, number> = {};
        for (const phase of STARTUP_PHASES) {
          const values = perTrace.flatMap((p) => (p[phase] === undefined ? [] : [p[phase]!]));
          if (values.length > 0) phasesMs[phase] = median(values);
        }
        const totals = g.traces.map((t) => callTotalMs(t)!);
        return { start: g.start, isolation: g.isolation, count: g.traces.length, phasesMs, totalMs: median(totals) };
      });
  }
}
