/**
 * First-call latency of a node hello function served `cold`, `stemcell` and `warm`, beside
 * their floors measured in the same run (`runc run` of the same bundle; a direct request
 * on a running instance's socket), then a bursty load and a steady stream with two workers:
 * warm-hit ratio and latency.
 * Run: `npx tsx bench/warm-pools.ts [-n 30]` with the local stack's services up.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseReference, RegistryClient } from '@hearth/oci';
import { createTestDatabase, testEnv, uniquePrefix } from '../test/helpers/services.ts';
import { runCli, startApp, startStack, type AppProcess } from '../test/helpers/stack.ts';
import { cleanupInstances } from '@hearth/runtime';
import { machineLine, ms, summary, writeResult } from './lib.ts';
import { measureFloors, timed } from './floors.ts';

const N = Number(process.argv[process.argv.indexOf('-n') + 1]) || 30;
const BURSTS = 5;
const BURST_SIZE = 20;
const STREAM = 100;
const prefix = uniquePrefix('wpb');
const step = (m: string) => process.stderr.write(`[bench] ${m}\n`);

step('starting a stack');
const db = await createTestDatabase(prefix.replaceAll('-', '_'));
const stack = await startStack({ prefix, databaseUrl: db.url, env: { HEARTH_STEM_CELLS: '1', HEARTH_WORKER_ID: `${prefix}-a` } });
let worker: AppProcess = stack.worker;
let second: AppProcess | undefined;
const work = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
const pushed: string[] = [];
const url = (name: string) => `${stack.gatewayUrl}/function/${name}`;

async function deploy(name: string, extra: string): Promise<string> {
  const init = await runCli(['init', name, '--runtime', 'node'], { cwd: work, env: stack.env });
  if (init.code !== 0) throw new Error(init.stderr);
  await fs.appendFile(path.join(work, name, 'hearth.yaml'), `${extra}\n`);
  const res = await runCli(['deploy', name], { cwd: work, env: { ...stack.env, HEARTH_REGISTRY: testEnv().registry } });
  if (res.code !== 0) throw new Error(res.stderr);
  const ref = res.stdout.split('\n').find((l) => /@sha256:/.test(l))!.trim();
  pushed.push(ref);
  return ref;
}

/** One call; returns its latency and how it was served. */
async function call(name: string): Promise<{ ms: number; start: string; worker?: string }> {
  let start = '';
  const t = await timed(async () => {
    const res = await fetch(url(name), { method: 'POST', body: 'world' });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${name}: ${res.status} ${text}`);
    start = res.headers.get('x-hearth-start') ?? '';
  });
  return { ms: t, start };
}

/** A stem cell is ready, per a status the worker published after `since` (statuses are coalesced). */
async function stemCellReady(since: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await fetch(`${stack.gatewayUrl}/system/instances`, { headers: stack.authHeaders });
    const body = (await res.json()) as { workers: { workerId: string; at: number; stemCells: Record<string, { ready: number }> }[] };
    if (body.workers.some((w) => w.at > since && (w.stemCells.node?.ready ?? 0) > 0)) return;
    if (Date.now() > deadline) throw new Error('no stem cell became ready');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function instanceCount(name: string): Promise<number> {
  const res = await fetch(`${stack.gatewayUrl}/system/instances?function=${name}`, { headers: stack.authHeaders });
  return ((await res.json()) as { instances: unknown[] }).instances.length;
}

try {
  const oneShot = `${prefix}-once`;
  const kept = `${prefix}-kept`;
  const burst = `${prefix}-burst`;
  step('deploying');
  await deploy(oneShot, 'scale: { minWarm: 0, maxInstances: 10, idleTtlSec: 0 }');
  const keptRef = await deploy(kept, 'scale: { minWarm: 0, maxInstances: 10, idleTtlSec: 600 }');
  await deploy(burst, 'concurrency: 4\nscale: { minWarm: 0, maxInstances: 4, idleTtlSec: 600 }');

  // The image is pulled and unpacked once per worker: out of the numbers.
  await call(oneShot);

  step('stem cell calls');
  const stemcell: number[] = [];
  for (let i = 0; i < N; i++) {
    await stemCellReady(Date.now());
    const r = await call(oneShot);
    if (r.start !== 'stemcell') throw new Error(`expected a stem cell, got ${r.start}`);
    stemcell.push(r.ms);
  }

  step('warm calls');
  await call(kept);
  const warm: number[] = [];
  for (let i = 0; i < Math.max(N, 100); i++) {
    const r = await call(kept);
    if (r.start !== 'warm') throw new Error(`expected warm, got ${r.start}`);
    warm.push(r.ms);
  }
  step('warm calls after a pause');
  const thawed: number[] = [];
  for (let i = 0; i < Math.min(N, 20); i++) {
    await new Promise((r) => setTimeout(r, 2500)); // past HEARTH_PAUSE_AFTER_MS (2 s): the instance is frozen
    const r = await call(kept);
    if (r.start !== 'warm') throw new Error(`expected warm, got ${r.start}`);
    thawed.push(r.ms);
  }

  step('cold calls (a worker without stem cells)');
  if ((await worker.stop()) !== 0) throw new Error('worker did not stop cleanly');
  worker = await startApp('worker', { ...stack.env, HEARTH_STEM_CELLS: '0', HEARTH_WORKER_ID: `${prefix}-a` }, /worker ready/);
  await call(oneShot);
  const cold: number[] = [];
  for (let i = 0; i < N; i++) {
    const r = await call(oneShot);
    if (r.start !== 'cold') throw new Error(`expected cold, got ${r.start}`);
    cold.push(r.ms);
  }

  step('two workers: bursts after idle, then a steady stream');
  second = await startApp('worker', { ...stack.env, HEARTH_STEM_CELLS: '1', HEARTH_WORKER_ID: `${prefix}-b`, HEARTH_INSTANCE_PREFIX: `${prefix}-b-` }, /worker ready/);
  await call(burst);
  const burstCalls: { ms: number; start: string }[] = [];
  let mostInstances = 0;
  for (let b = 0; b < BURSTS; b++) {
    await new Promise((r) => setTimeout(r, 3000)); // idle: paused
    burstCalls.push(...(await Promise.all(Array.from({ length: BURST_SIZE }, () => call(burst)))));
    mostInstances = Math.max(mostInstances, await instanceCount(burst));
  }
  const stream: { ms: number; start: string }[] = [];
  for (let i = 0; i < STREAM; i++) stream.push(await call(burst));

  step('floors');
  const { runcRun, direct } = await measureFloors({ imageRef: keptRef, work, prefix, n: N, warmN: Math.max(N, 100) });

  const warmHit = (calls: { start: string }[]) => calls.filter((c) => c.start === 'warm').length / calls.length;
  const s = {
    cold: summary(cold),
    stemcell: summary(stemcell),
    warm: summary(warm),
    thawed: summary(thawed),
    runcRun: summary(runcRun),
    direct: summary(direct),
    burst: { ...summary(burstCalls.map((c) => c.ms)), warmHit: warmHit(burstCalls), mostInstances, cold: burstCalls.filter((c) => c.start !== 'warm').length },
    stream: { ...summary(stream.map((c) => c.ms)), warmHit: warmHit(stream) },
  };
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const md = `# Warm pools: cold, stem cell and warm first calls; bursts with two workers

Measured ${new Date().toISOString().slice(0, 10)} on: \`${machineLine()}\`

A node hello function (\`hearth init\`) deployed through the CLI; every call goes through the
gateway, Redis (BullMQ) and a worker. \`cold\`: a worker without stem cells and
\`idleTtlSec: 0\`, so every call starts a runc container (image already pulled). \`stemcell\`:
the same function with one stem cell per worker, waited for before each call. \`warm\`:
back-to-back calls on a running instance; \`warm after pause\`: a call 2.5 s after the last,
when the idle instance has been frozen (the thaw is in the number). Floors in the same run.

| path | n | p50 | p95 | floor | floor p50 | ratio p50 |
|---|---|---|---|---|---|---|
| cold | ${s.cold.n} | ${ms(s.cold.p50)} | ${ms(s.cold.p95)} | \`runc run\` of the same bundle → first answer | ${ms(s.runcRun.p50)} | ${ratio(s.cold.p50, s.runcRun.p50)}× |
| stemcell | ${s.stemcell.n} | ${ms(s.stemcell.p50)} | ${ms(s.stemcell.p95)} | \`runc run\` | ${ms(s.runcRun.p50)} | ${ratio(s.stemcell.p50, s.runcRun.p50)}× |
| warm | ${s.warm.n} | ${ms(s.warm.p50)} | ${ms(s.warm.p95)} | direct request on the socket | ${ms(s.direct.p50)} | ${ratio(s.warm.p50, s.direct.p50)}× |
| warm after pause | ${s.thawed.n} | ${ms(s.thawed.p50)} | ${ms(s.thawed.p95)} | direct request | ${ms(s.direct.p50)} | ${ratio(s.thawed.p50, s.direct.p50)}× |

Stem cell p50 / warm p50: **${ratio(s.stemcell.p50, s.warm.p50)}×** (target ≤ 3×). Stem cell p50 / cold p50: ${ratio(s.stemcell.p50, s.cold.p50)}×.

Two workers, \`concurrency: 4\`, \`maxInstances: 4\`:

| load | calls | warm-hit | p50 | p99 | most instances |
|---|---|---|---|---|---|
| ${BURSTS} bursts of ${BURST_SIZE} concurrent calls, 3 s idle before each | ${s.burst.n} | ${pct(s.burst.warmHit)} | ${ms(s.burst.p50)} | ${ms(s.burst.p99)} | ${s.burst.mostInstances} |
| steady stream, ${STREAM} sequential calls | ${s.stream.n} | **${pct(s.stream.warmHit)}** (target > 95%) | ${ms(s.stream.p50)} | ${ms(s.stream.p99)} | |

Run it again with \`npx tsx bench/warm-pools.ts -n 30\`.
`;
  const file = await writeResult('warm-pools', md, { n: N, samplesMs: { cold, stemcell, warm, thawed, runcRun, direct }, burst: burstCalls, stream, summary: s });
  console.log(md);
  console.log(`written to ${file}`);
} finally {
  await second?.stop();
  await worker.stop();
  await stack.stopApps();
  await cleanupInstances(stack.home, `${prefix}-`);
  for (const ref of pushed) {
    const r = parseReference(ref);
    await new RegistryClient({ registry: r.registry, insecure: true }).deleteManifest(r.repository, r.digest!).catch(() => {});
  }
  await db.drop();
  await fs.rm(stack.home, { recursive: true, force: true });
  await fs.rm(work, { recursive: true, force: true });
}
