/**
 * The startup comparison as a standalone SVG: one bar per isolation, its p50 phases stacked in
 * call order, and one bar per reference. Plain SVG 1.1 with no script or external resource,
 * so it renders the same in a browser, an image viewer and a README.
 */
import { STARTUP_PHASES } from '@hearth/core';
import type { StartupReport } from './startup-report.ts';

/** A colour per phase, stable across runs so charts compare at a glance. */
export const PHASE_COLOURS: Record<string, string> = {
  'queue.wait': '#9aa5b1',
  'pool.acquire': '#f0b429',
  'image.pull': '#8e6ac8',
  'image.unpack': '#b990f0',
  'sandbox.create': '#3ebd93',
  'sandbox.start': '#2680c2',
  'sandbox.ready': '#47a3f3',
  'function.invoke': '#ef4e4e',
  other: '#cbd2d9',
  reference: '#52606d',
};

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);

/** A round axis step giving about `ticks` ticks up to `max`. */
function niceStep(max: number, ticks = 5): number {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return ([1, 2, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
}

export function renderStartupSvg(report: StartupReport): string {
  const width = 880;
  const left = 170;
  const right = 110;
  const rowH = 34;
  const top = 58;
  type Bar = { label: string; segments: { name: string; ms: number }[]; total: number };
  const bars: Bar[] = report.isolations.map((i) => {
    const segments = STARTUP_PHASES.flatMap((p) => (i.phases[p] ? [{ name: p as string, ms: i.phases[p]!.p50 }] : []));
    segments.push({ name: 'other', ms: i.otherMs.p50 });
    const name = i.isolation === 'vm' && i.accel ? `vm (${i.accel})` : i.isolation === 'stemcell' ? 'stem cell' : i.isolation;
    return { label: `${name}, n=${i.runs}`, segments, total: i.totalMs.p50 };
  });
  for (const ref of report.references) {
    if (ref.totalMs) bars.push({ label: ref.name, segments: [{ name: 'reference', ms: ref.totalMs.p50 }], total: ref.totalMs.p50 });
  }
  const max = Math.max(1, ...bars.map((b) => Math.max(b.total, b.segments.reduce((s, x) => s + x.ms, 0))));
  const step = niceStep(max);
  const axisMax = Math.ceil(max / step) * step;
  const scale = (width - left - right) / axisMax;
  const chartBottom = top + bars.length * rowH;
  const legendNames = [...new Set(bars.flatMap((b) => b.segments.map((s) => s.name)))];
  const legendRows = Math.ceil(legendNames.length / 4);
  const height = chartBottom + 40 + legendRows * 20 + 24;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`);
  out.push(`<title>${escapeXml(`Startup of ${report.function}: p50 per phase`)}</title>`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${escapeXml(`Startup of ${report.function}, p50 per phase`)}</text>`);
  out.push(`<text x="${left}" y="40" fill="#52606d">${escapeXml(`${report.runsPerIsolation} starts per isolation, image present · ${report.date.slice(0, 10)}`)}</text>`);
  for (let t = 0; t <= axisMax + 1e-9; t += step) {
    const x = left + t * scale;
    out.push(`<line x1="${x.toFixed(1)}" y1="${top - 6}" x2="${x.toFixed(1)}" y2="${chartBottom}" stroke="#e4e7eb"/>`);
    out.push(`<text x="${x.toFixed(1)}" y="${chartBottom + 16}" text-anchor="middle" fill="#52606d">${escapeXml(fmt(t))}</text>`);
  }
  bars.forEach((bar, row) => {
    const y = top + row * rowH;
    out.push(`<g class="bar" data-label="${escapeXml(bar.label)}" data-total-ms="${bar.total.toFixed(3)}">`);
    out.push(`<text x="${left - 8}" y="${y + 17}" text-anchor="end">${escapeXml(bar.label)}</text>`);
    let x = left;
    for (const seg of bar.segments) {
      const w = Math.max(0, seg.ms * scale);
      out.push(`<rect class="segment" data-phase="${escapeXml(seg.name)}" data-ms="${seg.ms.toFixed(3)}" x="${x.toFixed(2)}" y="${y + 4}" width="${w.toFixed(2)}" height="${rowH - 10}" fill="${PHASE_COLOURS[seg.name] ?? '#999'}"><title>${escapeXml(`${seg.name}: ${fmt(seg.ms)}`)}</title></rect>`);
      x += w;
    }
    out.push(`<text x="${(x + 6).toFixed(1)}" y="${y + 17}" fill="#1f2933">${escapeXml(fmt(bar.total))}</text>`);
    out.push('</g>');
  });
  legendNames.forEach((name, i) => {
    const x = left + (i % 4) * 160;
    const y = chartBottom + 34 + Math.floor(i / 4) * 20;
    const text = name === 'other' ? 'gateway and worker' : name;
    out.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${PHASE_COLOURS[name] ?? '#999'}"/><text x="${x + 18}" y="${y}">${escapeXml(text)}</text>`);
  });
  out.push(`<text x="${left}" y="${height - 8}" fill="#7b8794" font-size="10">${escapeXml(report.machine)}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
