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
  return ([1, 2, 2.5, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
}

type Bar = { label: string; segments: { name: string; ms: number }[]; total: number };

const barLength = (b: Bar) => Math.max(b.total, b.segments.reduce((sum, x) => sum + x.ms, 0));
const tickLabel = (ms: number) => (ms >= 1000 ? `${+(ms / 1000).toFixed(2)} s` : `${+ms.toFixed(1)} ms`);

/** One chart panel: `bars` on a linear axis from 0, starting at `top`; returns its SVG and height. */
function panel(bars: Bar[], top: number, heading: string, geometry: { width: number; left: number; right: number; rowH: number }): { svg: string[]; height: number } {
  const { width, left, right, rowH } = geometry;
  const out: string[] = [`<text x="${left}" y="${top + 12}" font-weight="bold" fill="#323f4b">${escapeXml(heading)}</text>`];
  const barsTop = top + 26;
  const max = Math.max(1, ...bars.map(barLength));
  const step = niceStep(max);
  const axisMax = Math.ceil(max / step - 1e-9) * step;
  const scale = (width - left - right) / axisMax;
  const bottom = barsTop + bars.length * rowH;
  for (let i = 0; i * step <= axisMax + 1e-9; i++) {
    const x = left + i * step * scale;
    out.push(`<line x1="${x.toFixed(1)}" y1="${barsTop - 4}" x2="${x.toFixed(1)}" y2="${bottom}" stroke="#e4e7eb"/>`);
    out.push(`<text x="${x.toFixed(1)}" y="${bottom + 15}" text-anchor="middle" fill="#52606d">${escapeXml(tickLabel(i * step))}</text>`);
  }
  bars.forEach((bar, row) => {
    const y = barsTop + row * rowH;
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
  return { svg: out, height: bottom + 24 - top };
}

/**
 * The chart: every bar on one axis, and when the longest is over ten times the shortest (a
 * microVM under TCG beside a container), the short ones again on an axis of their own, so
 * their phases can be read. Bars in the first panel are `g.bar`; the zoomed copies `g.zoom`.
 */
export function renderStartupSvg(report: StartupReport): string {
  const geometry = { width: 880, left: 170, right: 110, rowH: 34 };
  const bars: Bar[] = report.isolations.map((i) => {
    const segments = STARTUP_PHASES.flatMap((p) => (i.phases[p] ? [{ name: p as string, ms: i.phases[p]!.p50 }] : []));
    segments.push({ name: 'other', ms: i.otherMs.p50 });
    const name = i.isolation === 'vm' && i.accel ? `vm (${i.accel})` : i.isolation === 'stemcell' ? 'stem cell' : i.isolation;
    return { label: `${name}, n=${i.runs}`, segments, total: i.totalMs.p50 };
  });
  for (const ref of report.references) {
    if (ref.totalMs) bars.push({ label: ref.name, segments: [{ name: 'reference', ms: ref.totalMs.p50 }], total: ref.totalMs.p50 });
  }
  const longest = Math.max(1, ...bars.map(barLength));
  const short = bars.filter((b) => barLength(b) * 10 <= longest);

  const body: string[] = [];
  let y = 50;
  const all = panel(bars, y, 'All, on one axis', geometry);
  body.push(...all.svg);
  y += all.height;
  if (short.length > 0) {
    const zoom = panel(short, y + 8, `Zoomed: the starts under ${tickLabel(longest / 10)}`, geometry);
    body.push(...zoom.svg.map((line) => line.replace('<g class="bar"', '<g class="zoom"')));
    y += zoom.height + 8;
  }
  const legendNames = [...new Set(bars.flatMap((b) => b.segments.map((s) => s.name)))];
  legendNames.forEach((name, i) => {
    const x = geometry.left + (i % 4) * 160;
    const ly = y + 18 + Math.floor(i / 4) * 20;
    const text = name === 'other' ? 'gateway and worker' : name;
    body.push(`<rect x="${x}" y="${ly - 10}" width="12" height="12" fill="${PHASE_COLOURS[name] ?? '#999'}"/><text x="${x + 18}" y="${ly}">${escapeXml(text)}</text>`);
  });
  const height = y + 18 + Math.ceil(legendNames.length / 4) * 20 + 20;
  const { width, left } = geometry;
  return `${[
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<title>${escapeXml(`Startup of ${report.function}: p50 per phase`)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="bold">${escapeXml(`Startup of ${report.function}, p50 per phase`)}</text>`,
    `<text x="${left}" y="40" fill="#52606d">${escapeXml(`${report.runsPerIsolation} starts per isolation, image present · ${report.date.slice(0, 10)}`)}</text>`,
    ...body,
    `<text x="${left}" y="${height - 8}" fill="#7b8794" font-size="10">${escapeXml(report.machine)}</text>`,
    '</svg>',
  ].join('\n')}\n`;
}
