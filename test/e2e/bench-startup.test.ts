import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { cleanupVmInstances } from '@hearth/runtime';
import { fetchVmKernel } from '../../infra/images/vm-kernel.ts';
import { runCli } from '../helpers/stack.ts';
import { testEnv } from '../helpers/services.ts';
import { startTracedEcho, type SpanJson, type TracedEcho } from './traces-fixture.ts';

const CHROMIUM = process.env.HEARTH_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SANDBOX_PHASES = ['sandbox.create', 'sandbox.start', 'sandbox.ready'];
const vmHome = process.env.HEARTH_VM_HOME || '/tmp/hearth-test-cache';

interface Stat { p50: number; p95: number }
interface Report {
  function: string;
  machine: string;
  runsPerIsolation: number;
  isolations: { isolation: string; runs: number; starts: Record<string, number>; accel?: string; phases: Record<string, Stat>; otherMs: Stat; totalMs: Stat; phaseCoverage: number }[];
  vmToContainer?: number;
  references: { name: string; skipped?: string; totalMs?: Stat; samplesMs?: number[] }[];
  samples: { isolation: string; start: string; traceId: string; totalMs: number; phasesMs: Record<string, number>; spans: SpanJson[] }[];
}

let echo: TracedEcho;
let out: string;
let report: Report;
let stdout: string;

before(async () => {
  await fetchVmKernel({ home: vmHome });
  echo = await startTracedEcho('bst', { HEARTH_VM_HOME: vmHome, HEARTH_STEM_CELLS: '1' });
  out = await fs.mkdtemp(path.join(os.tmpdir(), `${echo.prefix}-bench-`));
  const res = await runCli(['bench', 'startup', echo.fnName, '--isolation', 'container,vm,stemcell', '-n', '2', '--out', out], {
    cwd: echo.workdir,
    env: { ...echo.stack.env, HEARTH_REGISTRY: testEnv().registry },
  });
  assert.equal(res.code, 0, `${res.stderr}\n${res.stdout}`);
  stdout = res.stdout;
  if (process.env.HEARTH_TEST_DEBUG) console.log(res.stdout);
  report = JSON.parse(await fs.readFile(path.join(out, 'startup.json'), 'utf8')) as Report;
});

after(async () => {
  if (echo) await cleanupVmInstances(echo.stack.home, `${echo.prefix}-`);
  await echo?.cleanup();
  if (out) await fs.rm(out, { recursive: true, force: true });
});

test('hearth bench startup measures cold starts per isolation from their traces, with every phase', () => {
  assert.equal(report.function, echo.fnName);
  assert.deepEqual(report.isolations.map((i) => i.isolation), ['container', 'vm', 'stemcell']);
  const byIso = Object.fromEntries(report.isolations.map((i) => [i.isolation, i]));
  assert.deepEqual(byIso.container!.starts, { cold: 2 }, 'a container run is a cold start, never a stem cell or a warm instance');
  assert.deepEqual(byIso.vm!.starts, { cold: 2 });
  assert.match(byIso.vm!.accel ?? '', /^(kvm|tcg)$/);
  assert.deepEqual(byIso.stemcell!.starts, { stemcell: 2 });
  for (const iso of ['container', 'vm']) {
    // The image is present (the unmeasured first start pulled and unpacked it): no pull, no unpack.
    assert.equal(byIso[iso]!.phases['image.pull'], undefined);
    for (const phase of [...SANDBOX_PHASES, 'queue.wait', 'pool.acquire', 'function.invoke']) {
      assert.ok(byIso[iso]!.phases[phase], `${iso} has no ${phase}`);
    }
    // The phases account for the call: what is left is the gateway's and worker's own work.
    assert.ok(byIso[iso]!.phaseCoverage > 0.9 && byIso[iso]!.phaseCoverage <= 1.0001, `${iso} phases cover ${byIso[iso]!.phaseCoverage}`);
  }
  assert.equal(byIso.stemcell!.phases['sandbox.start'], undefined, 'a stem cell start has no sandbox start of its own');
  assert.ok(report.vmToContainer! > 0);
  assert.equal(report.vmToContainer, byIso.vm!.totalMs.p50 / byIso.container!.totalMs.p50);

  // The raw spans are the traces themselves: one per sample, every span of one trace.
  assert.equal(report.samples.length, 6);
  for (const s of report.samples) {
    assert.match(s.traceId, /^[0-9a-f]{32}$/);
    const root = s.spans.find((sp) => sp.name === 'gateway.invoke');
    assert.ok(root, `sample ${s.traceId} has no gateway span`);
    assert.equal(s.totalMs, root.durationUs / 1000);
    assert.ok(s.spans.every((sp) => sp.parentSpanId === null || s.spans.some((p) => p.spanId === sp.parentSpanId) || sp.name === 'gateway.invoke'));
  }

  const runc = report.references.find((r) => r.name === 'runc run')!;
  assert.equal(runc.samplesMs?.length, 2, `runc run: ${runc.skipped ?? ''}`);
  assert.ok(runc.totalMs!.p50 > 0);
  const docker = report.references.find((r) => r.name === 'docker run')!;
  assert.ok(docker.skipped || docker.samplesMs?.length === 2, 'docker run is measured or says why not');

  assert.match(stdout, /^PHASE\s+container p50\s+p95\s+vm \((kvm|tcg)\) p50\s+p95\s+stem cell p50\s+p95$/m);
  assert.match(stdout, /^sandbox\.start\s+\d/m);
  assert.match(stdout, /^total\s+\d/m);
  assert.match(stdout, /vm \/ container \(total p50\): \d+(\.\d)?×/);
  assert.match(stdout, /runc run: p50 \d/);
});

test('the bench copies are gone afterwards and the function itself was not touched', async () => {
  const list = await echo.system<{ name: string; version: number }[]>('/system/functions');
  assert.deepEqual(list.map((f) => f.name), [echo.fnName]);
  assert.equal(list[0]!.version, 1);
  const res = await echo.call('/');
  await res.text();
  assert.equal(res.status, 200);
});

test('the SVG chart is valid and draws one bar per isolation and measured reference, its phases stacked', async () => {
  const svg = await fs.readFile(path.join(out, 'startup.svg'), 'utf8');
  const profile = await fs.mkdtemp(path.join(os.tmpdir(), `${echo.prefix}-chromium-`));
  let browser: BrowserContext | undefined;
  try {
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
    const page = browser.pages()[0] ?? (await browser.newPage());
    const file = path.join(out, 'startup.svg');
    await page.goto(`file://${file}`);
    // An XML error would render as chromium's parser error page instead of the chart.
    assert.equal(await page.locator('parsererror').count(), 0);
    const bars = await page.locator('g.bar').evaluateAll((els) =>
      els.map((g) => ({
        label: g.getAttribute('data-label'),
        total: Number(g.getAttribute('data-total-ms')),
        segments: [...g.querySelectorAll('rect.segment')].map((r) => ({ phase: r.getAttribute('data-phase'), ms: Number(r.getAttribute('data-ms')), width: (r as unknown as { getBBox(): { width: number } }).getBBox().width })),
      })),
    );
    const measuredRefs = report.references.filter((r) => r.totalMs).length;
    assert.equal(bars.length, 3 + measuredRefs);
    const container = bars.find((b) => b.label?.startsWith('container'))!;
    assert.deepEqual(container.segments.map((s) => s.phase), ['queue.wait', 'pool.acquire', ...SANDBOX_PHASES, 'function.invoke', 'other']);
    const vm = bars.find((b) => b.label?.startsWith('vm'))!;
    // Drawn to one scale: the longer start has the longer bar.
    const width = (b: typeof vm) => b.segments.reduce((s, x) => s + x.width, 0);
    assert.equal(width(vm) > width(container), vm.total > container.total);
    assert.ok(svg.includes(report.machine.slice(0, 20)), 'the chart names the machine it was measured on');
  } finally {
    await browser?.close();
    await fs.rm(profile, { recursive: true, force: true });
  }
});

test('bench startup names what is wrong: an unknown function, an unknown isolation', async () => {
  const env = { ...echo.stack.env, HEARTH_REGISTRY: testEnv().registry };
  const missing = await runCli(['bench', 'startup', `${echo.prefix}-nope`], { cwd: echo.workdir, env });
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /nope/);
  const bad = await runCli(['bench', 'startup', echo.fnName, '--isolation', 'container,firecracker'], { cwd: echo.workdir, env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /"firecracker" is none of them/);
});
