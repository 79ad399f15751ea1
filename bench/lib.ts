import { execFileSync } from 'node:child_process';
import os from 'node:os';
import fs from 'node:fs/promises';
import path from 'node:path';

/** Nearest-rank percentile of samples in ms. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? NaN;
}

export function summary(samples: number[]) {
  return { n: samples.length, p50: percentile(samples, 50), p95: percentile(samples, 95), p99: percentile(samples, 99) };
}

/** The machine a result was measured on: results only compare on the same line. */
export function machineLine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  let runc = '';
  try {
    runc = execFileSync('runc', ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '';
  } catch {}
  return `${os.hostname()} · ${os.type()} ${os.release()} · ${cpu} × ${os.availableParallelism()} · ${Math.round(os.totalmem() / 2 ** 30)} GiB · node ${process.version} · ${runc}`;
}

export async function writeResult(name: string, markdown: string, json: unknown): Promise<string> {
  const dir = path.join(path.dirname(new URL(import.meta.url).pathname), 'results');
  await fs.mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().slice(0, 10);
  await fs.writeFile(path.join(dir, `${name}.md`), markdown);
  await fs.writeFile(path.join(dir, `${name}.json`), JSON.stringify({ date: stamp, machine: machineLine(), ...(json as object) }, null, 2) + '\n');
  return path.join(dir, `${name}.md`);
}

export const ms = (n: number) => `${n.toFixed(1)} ms`;

/** Times one call; a call that takes over a minute is a bug, not a sample. */
export async function timed(fn: () => Promise<unknown>, onHang: () => string = () => ''): Promise<number> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`a call hung for 60 s\n${onHang()}`)), 60_000);
  });
  try {
    await Promise.race([fn(), hang]);
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - t0;
}

/**
 * Until no worker reports an instance of `name` (GET /system/instances): the next call starts
 * one from nothing. `onHang` adds what to show when it never happens.
 */
export async function waitForNoInstances(gatewayUrl: string, headers: Record<string, string>, name: string, onHang: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await fetch(`${gatewayUrl}/system/instances?function=${name}`, { headers });
    if (((await res.json()) as { instances: unknown[] }).instances.length === 0) return;
    if (Date.now() > deadline) throw new Error(`instances of ${name} were not released within 30 s\n${onHang()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
