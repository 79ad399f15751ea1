/**
 * A startup benchmark's numbers: per isolation, each phase's p50 and p95 and the whole call's,
 * beside the references; as a JSON document (with every raw span) and as a terminal table.
 */
import os from 'node:os';
import { STARTUP_PHASES, type StartupPhase } from '@hearth/core';
import type { Reference } from './references.ts';
import type { BenchIsolation, StartupSample } from './startup-run.ts';

export interface Stat {
  p50: number;
  p95: number;
}

/** Nearest-rank percentile. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? NaN;
}

const stat = (values: number[]): Stat => ({ p50: percentile(values, 50), p95: percentile(values, 95) });

export interface IsolationSummary {
  isolation: BenchIsolation;
  runs: number;
  /** How the measured starts were served (`cold: 5`, or `stemcell: 4, cold: 1` when no cell was ready). */
  starts: Record<string, number>;
  accel?: string;
  /** Each phase's own time; only phases the starts had. */
  phases: Partial<Record<StartupPhase, Stat>>;
  /** The call's time outside every phase: the gateway's and the worker's own work. */
  otherMs: Stat;
  totalMs: Stat;
  /** p50 of (sum of the phases / total): how much of the call the phases account for. */
  phaseCoverage: number;
}

export interface ReferenceSummary {
  name: 'runc run' | 'docker run';
  note?: string;
  skipped?: string;
  totalMs?: Stat;
  samplesMs?: number[];
}

/** The JSON `hearth bench startup` writes: the summary, and every start with its raw spans. */
export interface StartupReport {
  function: string;
  image: string;
  date: string;
  machine: string;
  runsPerIsolation: number;
  isolations: IsolationSummary[];
  /** vm total p50 / container total p50, when both ran. */
  vmToContainer?: number;
  references: ReferenceSummary[];
  samples: StartupSample[];
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

export function summarizeIsolation(isolation: BenchIsolation, samples: StartupSample[]): IsolationSummary {
  const phases: Partial<Record<StartupPhase, Stat>> = {};
  for (const phase of STARTUP_PHASES) {
    const values = samples.flatMap((s) => (s.phasesMs[phase] === undefined ? [] : [s.phasesMs[phase]!]));
    if (values.length > 0) phases[phase] = stat(values);
  }
  const phaseSums = samples.map((s) => sum(Object.values(s.phasesMs)));
  const starts: Record<string, number> = {};
  for (const s of samples) starts[s.start] = (starts[s.start] ?? 0) + 1;
  const accel = samples.find((s) => s.accel)?.accel;
  return {
    isolation,
    runs: samples.length,
    starts,
    ...(accel ? { accel } : {}),
    phases,
    otherMs: stat(samples.map((s, i) => Math.max(0, s.totalMs - phaseSums[i]!))),
    totalMs: stat(samples.map((s) => s.totalMs)),
    phaseCoverage: percentile(samples.map((s, i) => (s.totalMs > 0 ? phaseSums[i]! / s.totalMs : 0)), 50),
  };
}

export function summarizeReference(name: ReferenceSummary['name'], ref: Reference): ReferenceSummary {
  if ('skipped' in ref) return { name, skipped: ref.skipped };
  return { name, note: ref.note, totalMs: stat(ref.samplesMs), samplesMs: ref.samplesMs };
}

/** The machine a result was measured on: results compare only on the same line. */
export function machineLine(): string {
  return `${os.type()} ${os.release()} · ${os.cpus()[0]?.model ?? 'unknown cpu'} × ${os.availableParallelism()} · ${Math.round(os.totalmem() / 2 ** 30)} GiB · node ${process.version}`;
}

export function buildReport(input: { fn: { name: string; image: string }; runs: number; samples: StartupSample[]; references: ReferenceSummary[]; now?: Date }): StartupReport {
  const order = [...new Set(input.samples.map((s) => s.isolation))];
  const isolations = order.map((iso) => summarizeIsolation(iso, input.samples.filter((s) => s.isolation === iso)));
  const vm = isolations.find((i) => i.isolation === 'vm');
  const container = isolations.find((i) => i.isolation === 'container');
  return {
    function: input.fn.name,
    image: input.fn.image,
    date: (input.now ?? new Date()).toISOString(),
    machine: machineLine(),
    runsPerIsolation: input.runs,
    isolations,
    ...(vm && container && container.totalMs.p50 > 0 ? { vmToContainer: vm.totalMs.p50 / container.totalMs.p50 } : {}),
    references: input.references,
    samples: input.samples,
  };
}

const fmt = (ms: number | undefined): string => (ms === undefined || Number.isNaN(ms) ? '-' : ms >= 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);

const label = (i: IsolationSummary) => (i.isolation === 'vm' && i.accel ? `vm (${i.accel})` : i.isolation === 'stemcell' ? 'stem cell' : i.isolation);

/** The report as text: a row per phase, a p50 and a p95 column per isolation, then the references. */
export function renderReport(report: StartupReport): string {
  const isos = report.isolations;
  const header = ['PHASE', ...isos.flatMap((i) => [`${label(i)} p50`, 'p95'])];
  const row = (name: string, pick: (i: IsolationSummary) => Stat | undefined) => [name, ...isos.flatMap((i) => [fmt(pick(i)?.p50), fmt(pick(i)?.p95)])];
  const phases = STARTUP_PHASES.filter((p) => isos.some((i) => i.phases[p]));
  const rows = [
    header,
    ...phases.map((p) => row(p, (i) => i.phases[p])),
    row('(gateway, worker)', (i) => i.otherMs),
    row('total', (i) => i.totalMs),
    ['phases / total', ...isos.flatMap((i) => [`${(i.phaseCoverage * 100).toFixed(1)}%`, ''])],
  ];
  const widths = header.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const table = rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd()).join('\n');

  const lines = [
    `Startup of ${report.function}: ${report.runsPerIsolation} starts per isolation, image present, through gateway → queue → worker → sandbox`,
    `${report.machine}`,
    '',
    table,
    '',
    ...isos.map((i) => `${label(i)}: served ${Object.entries(i.starts).map(([k, n]) => `${k} ${n}`).join(', ')}`),
  ];
  if (report.vmToContainer !== undefined) lines.push(`vm / container (total p50): ${report.vmToContainer.toFixed(1)}×`);
  const container = isos.find((i) => i.isolation === 'container');
  for (const ref of report.references) {
    if (ref.skipped) {
      lines.push(`${ref.name}: not measured: ${ref.skipped}`);
      continue;
    }
    const vs = container && ref.totalMs ? ` (container / ${ref.name}: ${(container.totalMs.p50 / ref.totalMs.p50).toFixed(2)}×)` : '';
    lines.push(`${ref.name}: p50 ${fmt(ref.totalMs?.p50)}, p95 ${fmt(ref.totalMs?.p95)}${vs}`);
  }
  return `${lines.join('\n')}\n`;
}
