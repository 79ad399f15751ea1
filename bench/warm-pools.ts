/**
 * First-call latency of a node hello function served `cold`, `stemcell` and `warm`, beside
 * their floors measured in the same run (`runc run` of the same bundle; a direct request
 * on a running instance's socket), then bursts after idle and a steady stream with two
 * workers: warm-hit ratio, latency, instances and which worker served.
 * Run: `npx tsx bench/warm-pools.ts [-n 30]` with the local stack's services up.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SPANS } from '@hearth/core/telemetry';
import { cleanupInstances } from '@hearth/runtime';
import { cleanupRegistry, createTestDatabase, deleteRedisPrefix, testEnv, uniquePrefix } from '../test/helpers/services.ts';
import { runCli, startApp, startStack, type AppProcess } from '../test/helpers/stack.ts';
import { directSocketFloor, prepareFloorImage, runcRunFloor } from './floors.ts';
import { machineLine, ms, summary, timed, waitForNoInstances, writeResult } from './lib.ts';

const N = Number(process.argv[process.argv.indexOf('-n') + 1]) || 30;
const WARM_N = Math.max(N, 100);
const THAWED_N = Math.min(N, 20);
/** Past HEARTH_PAUSE_AFTER_MS (default 2 s): the idle instance is frozen when the next call comes. */
const IDLE_MS = 2500;
const BURSTS = 5;
const BURST_SIZE = 20;
const STREAM = 100;
// Short: the instance socket path under the stack's home may hold at most 107 bytes.
const prefix = uniquePrefix('wpb');
const workerA = { id: `${prefix}-a`, instancePrefix: `${prefix}-a-` };
const workerB = { id: `${prefix}-b`, instancePrefix: `${prefix}-b-` };
const step = (m: string) => process.stderr.write(`[bench] ${m}\n`);
const sleep = (msecs: number) => new Promise((r) => setTimeout(r, msecs));

step('starting a stack');
const db = await createTestDatabase(prefix.replaceAll('-', '_'));
const stack = await startStack({
  prefix,
  databaseUrl: db.url,
  env: { HEARTH_STEM_CELLS: '1', HEARTH_WORKER_ID: workerA.id, HEARTH_INSTANCE_PREFIX: workerA.instancePrefix },
});
let worker: AppProcess = stack.worker;
let second: AppProcess | undefined;
const work = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
const pushed: string[] = [];
const url = (name: string) => `${stack.gatewayUrl}/function/${name}`;
const hangReport = () => `worker a:\n${worker.output().slice(-3000)}\nworker b:\n${second?.output().slice(-3000) ?? ''}\ngateway:\n${stack.gateway.output().slice(-2000)}`;

/** `hearth init NAME --runtime node`, `extra` appended to its hearth.yaml, `hearth deploy`; returns the pushed ref@digest. */
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

interface Call {
  ms: number;
  start: string;
  instance: string;
}

/** One call through the gateway; its latency and how (and by which instance) it was served. */
async function call(name: string): Promise<Call> {
  let start = '';
  let instance = '';
  const t = await timed(async () => {
    const res = await fetch(url(name), { method: 'POST', body: 'world' });
    const text = await res.text();
    if (res.status !== 200) throw new Error(`${name}: ${res.status} ${text}`);
    start = res.headers.get('x-hearth-start') ?? '';
    instance = res.headers.get('x-hearth-instance') ?? '';
  }, hangReport);
  return { ms: t, start, instance };
}

/** `n` calls one after another, each checked to be served `expect`. */
async function series(name: string, n: number, expect: string, before?: () => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    await before?.();
    const r = await call(name);
    if (r.start !== expect) throw new Error(`${name} call ${i}: expected ${expect}, got "${r.start}" (instance ${r.instance})`);
    samples.push(r.ms);
  }
  return samples;
}

const workerOf = (instance: string) => (instance.startsWith(workerA.instancePrefix) ? 'a' : instance.startsWith(workerB.instancePrefix) ? 'b' : '?');

/** A node stem cell is ready, per a status a worker published after `since` (statuses are coalesced). */
async function stemCellReady(since: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await fetch(`${stack.gatewayUrl}/system/instances`, { headers: stack.authHeaders });
    const body = (await res.json()) as { workers: { at: number; stemCells: Record<string, { ready: number } | undefined> }[] };
    if (body.workers.some((w) => w.at > since && (w.stemCells.node?.ready ?? 0) > 0)) return;
    if (Date.now() > deadline) throw new Error(`no node stem cell became ready within 30 s\n${hangReport()}`);
    await sleep(20);
  }
}

/** The instances of `name` the workers report, by worker id. */
async function instancesByWorker(name: string): Promise<Record<string, number>> {
  const res = await fetch(`${stack.gatewayUrl}/system/instances?function=${name}`, { headers: stack.authHeaders });
  const counts: Record<string, number> = {};
  for (const i of ((await res.json()) as { instances: { worker: string }[] }).instances) counts[i.worker] = (counts[i.worker] ?? 0) + 1;
  return counts;
}

/** Epoch ms around a phase's calls, to find their traces in the span store. */
type Window = { fn: string; from: number; to: number; n: number };

/**
 * p50 duration (and start offset from the call's `gateway.invoke`) of each span name in the
 * traces of the calls made in `w`: where a path spends its time. Spans reach the store in
 * batches, so this waits (up to 20 s) until every call's root span is there.
 */
async function spanBreakdown(w: Window): Promise<{ name: string; n: number; p50Ms: number; offsetMs: number }[]> {
  const roots = `SELECT trace_id, start_us AS root FROM spans WHERE name = 'gateway.invoke' AND function_name = $1 AND start_us BETWEEN $2 AND $3`;
  const args = [w.fn, w.from * 1000, w.to * 1000];
  const deadline = Date.now() + 20_000;
  while ((await db.database.pool.query(`SELECT count(*)::int AS n FROM (${roots}) r`, args)).rows[0].n < w.n && Date.now() < deadline) await sleep(500);
  const { rows } = await db.database.pool.query(
    `SELECT s.name, count(*)::int AS n,
            (percentile_cont(0.5) WITHIN GROUP (ORDER BY s.duration_us) / 1000.0)::float8 AS "p50Ms",
            (percentile_cont(0.5) WITHIN GROUP (ORDER BY s.start_us - r.root) / 1000.0)::float8 AS "offsetMs"
       FROM spans s JOIN (${roots}) r USING (trace_id)
      GROUP BY s.name ORDER BY "offsetMs", "p50Ms" DESC`,
    args,
  );
  return rows;
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

  step(`stem cell calls (${N}, each after a node stem cell is ready)`);
  const windows: Record<string, Window> = {};
  const phase = async <T>(name: string, fn: string, n: number, run: () => Promise<T>): Promise<T> => {
    const from = Date.now();
    const out = await run();
    windows[name] = { fn, from, to: Date.now(), n };
    return out;
  };
  const stemcell = await phase('stemcell', oneShot, N, () => series(oneShot, N, 'stemcell', () => stemCellReady(Date.now())));

  step(`warm calls (${WARM_N} back to back, then ${THAWED_N} after ${IDLE_MS} ms idle)`);
  await call(kept);
  const warm = await phase('warm', kept, WARM_N, () => series(kept, WARM_N, 'warm'));
  const thawed = await phase('warm after pause', kept, THAWED_N, () => series(kept, THAWED_N, 'warm', () => sleep(IDLE_MS)));

  step(`cold calls (${N}, a worker without stem cells)`);
  if ((await worker.stop()) !== 0) throw new Error(`worker did not stop cleanly:\n${worker.output().slice(-3000)}`);
  worker = await startApp('worker', { ...stack.env, HEARTH_STEM_CELLS: '0' }, /worker ready/);
  await call(oneShot);
  const cold = await phase('cold', oneShot, N, () => series(oneShot, N, 'cold', () => waitForNoInstances(stack.gatewayUrl, stack.authHeaders, oneShot, hangReport)));

  step(`two workers: ${BURSTS} bursts of ${BURST_SIZE} after ${IDLE_MS + 500} ms idle, then a stream of ${STREAM}`);
  // Both workers as deployed by default: one node stem cell each.
  if ((await worker.stop()) !== 0) throw new Error(`worker did not stop cleanly:\n${worker.output().slice(-3000)}`);
  worker = await startApp('worker', { ...stack.env, HEARTH_STEM_CELLS: '1' }, /worker ready/);
  second = await startApp('worker', { ...stack.env, HEARTH_STEM_CELLS: '1', HEARTH_WORKER_ID: workerB.id, HEARTH_INSTANCE_PREFIX: workerB.instancePrefix }, /worker ready/);
  for (let i = 0; i < 3; i++) await call(burst);
  const bursts: { calls: Call[]; reported: Record<string, number> }[] = [];
  for (let b = 0; b < BURSTS; b++) {
    await sleep(IDLE_MS + 500);
    const calls = await Promise.all(Array.from({ length: BURST_SIZE }, () => call(burst)));
    bursts.push({ calls, reported: await instancesByWorker(burst) });
  }
  const stream: Call[] = [];
  for (let i = 0; i < STREAM; i++) stream.push(await call(burst));

  step('floors');
  const floorImage = await prepareFloorImage({ imageRef: keptRef, work, prefix });
  const direct = await directSocketFloor(floorImage, WARM_N);
  const runcRun = await runcRunFloor(floorImage, N);

  step('span breakdown');
  const breakdown: Record<string, Awaited<ReturnType<typeof spanBreakdown>>> = {};
  for (const name of ['cold', 'stemcell', 'warm', 'warm after pause']) breakdown[name] = await spanBreakdown(windows[name]!);

  const burstCalls = bursts.flatMap((b) => b.calls);
  const warmHit = (calls: Call[]) => calls.filter((c) => c.start === 'warm').length / calls.length;
  const startsOf = (calls: Call[]) => Object.fromEntries(['warm', 'stemcell', 'cold'].map((k) => [k, calls.filter((c) => c.start === k).length]));
  const servedBy = (calls: Call[]) => {
    const by: Record<string, number> = {};
    for (const c of calls) by[workerOf(c.instance)] = (by[workerOf(c.instance)] ?? 0) + 1;
    return by;
  };
  const distinct = (calls: Call[]) => new Set(calls.map((c) => c.instance)).size;
  const s = {
    cold: summary(cold),
    stemcell: summary(stemcell),
    warm: summary(warm),
    thawed: summary(thawed),
    runcRun: summary(runcRun),
    direct: summary(direct),
    burst: {
      ...summary(burstCalls.map((c) => c.ms)),
      warmHit: warmHit(burstCalls),
      starts: startsOf(burstCalls),
      servedBy: servedBy(burstCalls),
      instancesUsed: distinct(burstCalls),
      mostInstancesInOneBurst: Math.max(...bursts.map((b) => distinct(b.calls))),
      mostInstancesReported: Math.max(...bursts.map((b) => Object.values(b.reported).reduce((a, x) => a + x, 0))),
      perBurst: bursts.map((b) => ({ ...summary(b.calls.map((c) => c.ms)), starts: startsOf(b.calls), servedBy: servedBy(b.calls), instancesUsed: distinct(b.calls), reported: b.reported })),
    },
    stream: { ...summary(stream.map((c) => c.ms)), warmHit: warmHit(stream), starts: startsOf(stream), servedBy: servedBy(stream), instancesUsed: distinct(stream) },
  };
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const by = (o: Record<string, number>) =>
    Object.entries(o)
      .sort()
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ');
  const phases = ['cold', 'stemcell', 'warm', 'warm after pause'];
  const known: string[] = Object.values(SPANS);
  const spanNames = [...new Set(phases.flatMap((p) => breakdown[p]!.map((r) => r.name)))].sort(
    (a, b) => (known.indexOf(a) + 1 || 99) - (known.indexOf(b) + 1 || 99),
  );
  const spanCell = (p: string, name: string) => {
    const r = breakdown[p]!.find((x) => x.name === name);
    return r ? r.p50Ms.toFixed(1) : '';
  };
  const spanTable = [
    `| span | ${phases.join(' | ')} |`,
    `|---|${phases.map(() => '---').join('|')}|`,
    ...spanNames.map((name) => `| \`${name}\` | ${phases.map((p) => spanCell(p, name)).join(' | ')} |`),
  ].join('\n');
  const md = `# Warm pools: cold, stem cell and warm first calls; bursts with two workers

Measured ${new Date().toISOString().slice(0, 10)} on: \`${machineLine()}\`

A node hello function (\`hearth init\`) deployed through the CLI; every call goes through the
gateway, Redis (BullMQ) and a worker. \`cold\`: a worker without stem cells and
\`idleTtlSec: 0\`, so every call starts a runc container (image already pulled). \`stemcell\`:
the same function on a worker with one node stem cell, waited for before each call. \`warm\`:
back-to-back calls on a running instance; \`warm after pause\`: a call ${IDLE_MS / 1000} s after the
last, when the idle instance has been frozen (the thaw is in the number). Floors in the same run.

| path | n | p50 | p95 | floor | floor p50 | ratio p50 |
|---|---|---|---|---|---|---|
| cold | ${s.cold.n} | ${ms(s.cold.p50)} | ${ms(s.cold.p95)} | \`runc run\` of the same bundle → first answer | ${ms(s.runcRun.p50)} | ${ratio(s.cold.p50, s.runcRun.p50)}× |
| stemcell | ${s.stemcell.n} | ${ms(s.stemcell.p50)} | ${ms(s.stemcell.p95)} | \`runc run\` | ${ms(s.runcRun.p50)} | ${ratio(s.stemcell.p50, s.runcRun.p50)}× |
| warm | ${s.warm.n} | ${ms(s.warm.p50)} | ${ms(s.warm.p95)} | direct request on the socket | ${ms(s.direct.p50)} | ${ratio(s.warm.p50, s.direct.p50)}× |
| warm after pause | ${s.thawed.n} | ${ms(s.thawed.p50)} | ${ms(s.thawed.p95)} | direct request | ${ms(s.direct.p50)} | ${ratio(s.thawed.p50, s.direct.p50)}× |

Stem cell p50 / warm p50: **${ratio(s.stemcell.p50, s.warm.p50)}×** (target ≤ 3×). Stem cell p50 / cold p50: ${ratio(s.stemcell.p50, s.cold.p50)}×.

Where the time goes: p50 of each span (ms) in the traces of those calls. \`gateway.invoke\` is
the call as the gateway sees it; \`pool.acquire\` holds the start (\`sandbox.*\`), the
specialization of a stem cell (\`sandbox.specialize\`) or the thaw; spans are recorded in
whole milliseconds where the worker measures phases itself.

${spanTable}

Two workers (\`a\`, \`b\`; one node stem cell each), \`concurrency: 4\`, \`maxInstances: 4\`, warmed with 3 calls:

| load | calls | warm-hit | p50 | p99 | instances used | served by worker |
|---|---|---|---|---|---|---|
| ${BURSTS} bursts of ${BURST_SIZE} concurrent calls, ${(IDLE_MS + 500) / 1000} s idle before each | ${s.burst.n} | ${pct(s.burst.warmHit)} | ${ms(s.burst.p50)} | ${ms(s.burst.p99)} | ${s.burst.instancesUsed} (most in one burst ${s.burst.mostInstancesInOneBurst}) | ${by(s.burst.servedBy)} |
| steady stream, ${STREAM} sequential calls | ${s.stream.n} | **${pct(s.stream.warmHit)}** (target > 95%) | ${ms(s.stream.p50)} | ${ms(s.stream.p99)} | ${s.stream.instancesUsed} | ${by(s.stream.servedBy)} |

Starts in the bursts: ${by(s.burst.starts)}; most instances the workers reported after a burst: ${s.burst.mostInstancesReported}.
\`served by worker\` counts calls by their instance's id prefix. The gateway sends a version's
calls to a worker that holds an instance of it (the one with the most idle), so the other
worker serves only calls that arrive when no worker holds one; \`maxInstances\` is per worker.

Run it again with \`npx tsx bench/warm-pools.ts -n 30\`.
`;
  const file = await writeResult('warm-pools', md, { n: N, samplesMs: { cold, stemcell, warm, thawed, runcRun, direct }, bursts, stream, summary: s, spans: breakdown });
  console.log(md);
  console.log(`written to ${file}`);
} finally {
  await second?.stop();
  await worker.stop();
  await stack.gateway.stop();
  // Whatever a failed run left: the workers' and the floors' containers and mounts.
  await cleanupInstances(stack.home, `${prefix}-`);
  await cleanupInstances(path.join(work, 'floor-home'), `${prefix}-`);
  await cleanupRegistry(`fn/${prefix}`, pushed).catch(() => {});
  await db.drop();
  await deleteRedisPrefix(prefix);
  await fs.rm(stack.home, { recursive: true, force: true });
  await fs.rm(work, { recursive: true, force: true });
}
