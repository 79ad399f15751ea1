/**
 * Throughput of queue-triggered jobs, end to end: jobs/s from `add` (a plain bullmq
 * producer, addBulk) until the last one is completed, with a warm function, at trigger
 * concurrency 1 and 8; beside raw BullMQ with a no-op processor on the same Redis, in the
 * same run, measured the same way (the growth of the completed set).
 * Run: `npx tsx bench/queue-throughput.ts [-n 10000]` with the local stack's services up.
 * BENCH_APPS_NODE_OPTIONS (e.g. `--import ./profile.mjs`) is passed to the gateway and worker, for profiling.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import { Queue, Worker } from 'bullmq';
import path from 'node:path';
import { CLOUDEVENT_TYPES, cloudEventHeaders, redisConnection } from '@hearth/core';
import { ensureLayersUnpacked, openContentStore, parseReference, pullImage, RegistryClient } from '@hearth/oci';
import { createRuncSandbox } from '@hearth/runtime';
import { createTestDatabase, deleteRedisPrefix, testEnv, uniquePrefix } from '../test/helpers/services.ts';
import { startStack } from '../test/helpers/stack.ts';
import { deleteImage, deleteTriggerQueue, deployJobsFixture, putFunction, waitForConsumers } from '../test/helpers/triggers.ts';
import { machineLine, writeResult } from './lib.ts';

const argN = process.argv.indexOf('-n');
const N = (argN > 0 ? Number(process.argv[argN + 1]) : 0) || 10000;
/**
 * Jobs each row runs before its clock starts, the same for every row. "Warm" means JIT-warm
 * too: with a few dozen, eight fresh instances still ran half-compiled code during the
 * measured run and each cost three times the CPU per job of a warm one.
 */
const WARMUP = Math.min(N, 2000);
/** Timed runs per row; the table shows the median (this machine is shared and noisy). */
const REPEATS = 3;

/** Runs `timed` REPEATS times (each returns seconds for `n` jobs): the median and every rate. */
async function repeated(n: number, timed: () => Promise<number>): Promise<{ seconds: number; jobsPerSec: number; each: number[] }> {
  const all: number[] = [];
  for (let i = 0; i < REPEATS; i++) all.push(await timed());
  const seconds = [...all].sort((a, b) => a - b)[Math.floor(REPEATS / 2)]!;
  return { seconds, jobsPerSec: n / seconds, each: all.map((s) => Math.round(n / s)) };
}

/** The function's cgroup CPU quota in cores (the spec's default); BENCH_CPU overrides it. */
const FUNCTION_CPU = Number(process.env.BENCH_CPU ?? 0.5);
// Short: the invoke socket path (<home>/instances/<id>/rt/host/invoke.sock) may hold at most 108 bytes.
const prefix = uniquePrefix('qb');
const connection = redisConnection(testEnv().redisUrl);

interface Run {
  what: string;
  concurrency: number;
  /** Jobs per function call (trigger batchSize); 1 for raw BullMQ and the floor. */
  batchSize: number;
  jobs: number;
  /** The median of REPEATS timed runs. */
  seconds: number;
  /** jobs/s of each timed run, in order. */
  each: number[];
  jobsPerSec: number;
}

/**
 * Adds `n` jobs (addBulk per 1000) and resolves when the queue's completed set has grown by
 * `n`, polled every few ms. Not QueueEvents: BullMQ trims its event stream to ~10 000
 * entries, and a listener that falls behind a fast queue misses completions and waits forever.
 */
async function drain(queueName: string, n: number, tag: string): Promise<number> {
  const queue = new Queue(queueName, { connection });
  try {
    // One round trip per poll: the poll shares Redis with what it measures.
    const counts = () => queue.getJobCounts('completed', 'failed') as Promise<{ completed: number; failed: number }>;
    const before = await counts();
    const t0 = performance.now();
    for (let i = 0; i < n; i += 1000) {
      await queue.addBulk(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ name: tag, data: { i: i + k } })));
    }
    const deadline = Date.now() + 600_000;
    for (let now = await counts(); now.completed < before.completed + n; now = await counts()) {
      if (now.failed > before.failed) {
        const [job] = await queue.getFailed(0, 0);
        throw new Error(`a job failed: ${job?.failedReason}`);
      }
      if (Date.now() > deadline) throw new Error(`${queueName}: not all of ${n} jobs completed in 10 minutes`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return (performance.now() - t0) / 1000;
  } finally {
    await queue.close();
  }
}

async function rawBullmq(concurrency: number, n: number): Promise<Run> {
  const name = `${prefix}-raw-${concurrency}`;
  const worker = new Worker(name, async () => null, { connection, concurrency });
  await worker.waitUntilReady();
  try {
    await drain(name, WARMUP, 'warmup');
    return { what: 'raw BullMQ, no-op processor', concurrency, batchSize: 1, jobs: n, ...(await repeated(n, () => drain(name, n, 'raw'))) };
  } finally {
    await worker.close();
    await deleteTriggerQueue(name);
  }
}

/**
 * The floor: the same POST sent straight to a warm instance of the same image through the
 * runtime's invoke client, one at a time (no queue, no worker, no records).
 */
async function directFloor(image: string, n: number): Promise<Run> {
  const home = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}f-`));
  const store = openContentStore(path.join(home, 'content'));
  const ref = parseReference(image);
  const pulled = await pullImage({ store, client: new RegistryClient({ registry: ref.registry, insecure: true }), ref });
  const layers = await ensureLayersUnpacked({ home, store, image: pulled });
  const sandbox = createRuncSandbox({
    home,
    id: `${prefix}-floor`,
    layers,
    imageConfig: (pulled.config as { config?: object }).config ?? {},
    limits: { memoryMb: 128, cpu: FUNCTION_CPU },
    logPath: path.join(home, 'floor.log'),
  });
  try {
    await sandbox.start();
    const call = (i: number) =>
      sandbox.invoke(
        { method: 'POST', path: '/', query: '', headers: { 'content-type': 'application/json', ...cloudEventHeaders({ id: String(i), type: CLOUDEVENT_TYPES.queue, source: 'floor' }) }, body: Buffer.from(JSON.stringify({ i })) },
        { timeoutMs: 10000 },
      );
    for (let i = 0; i < WARMUP; i++) await call(i);
    const timed = async () => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await call(i);
      return (performance.now() - t0) / 1000;
    };
    return { what: 'floor: direct invoke of one warm instance (no queue)', concurrency: 1, batchSize: 1, jobs: n, ...(await repeated(n, timed)) };
  } finally {
    await sandbox.stop();
    await fs.rm(home, { recursive: true, force: true });
  }
}

const CONCURRENCIES = [1, 8];
/** One job per call, and Lambda's default batch size for queues. */
const BATCH_SIZES = [1, 10];
const hearthQueue = (concurrency: number, batchSize: number) => `${prefix}-q${concurrency}-b${batchSize}`;

const db = await createTestDatabase(prefix.replaceAll('-', '_'));
const stack = await startStack({ prefix, databaseUrl: db.url, env: process.env.BENCH_APPS_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_APPS_NODE_OPTIONS } : {} });
let image = '';
let workdir = '';
const runs: Run[] = [];
try {
  const fnName = `${prefix}-fn`;
  ({ image, workdir } = await deployJobsFixture(stack, fnName));
  for (const concurrency of CONCURRENCIES) {
    for (const batchSize of BATCH_SIZES) {
      const queueName = hearthQueue(concurrency, batchSize);
      const trigger = { queue: queueName, concurrency, ...(batchSize > 1 ? { batchSize } : {}) };
      await putFunction(stack, image, { name: fnName, timeoutMs: 10000, cpu: FUNCTION_CPU, scale: { minWarm: 0, maxInstances: 10, idleTtlSec: 600 }, triggers: [trigger] });
      const probe = new Queue(queueName, { connection });
      await waitForConsumers(probe, 1);
      await probe.close();
      // Warm: the instances the concurrency needs, started and JIT-compiled before the clock runs.
      await drain(queueName, WARMUP, 'warmup');
      const what = batchSize > 1 ? `Hearth queue trigger, batchSize ${batchSize} → warm runc function` : 'Hearth queue trigger → warm runc function';
      runs.push({ what, concurrency, batchSize, jobs: N, ...(await repeated(N, () => drain(queueName, N, 'bench'))) });
    }
    runs.push(await rawBullmq(concurrency, N));
  }

  runs.push(await directFloor(image, N));

  const uname = execFileSync('uname', ['-a'], { encoding: 'utf8' }).trim();
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  const mem = `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`;
  const rawAt = (c: number) => runs.find((r) => r.concurrency === c && r.what.startsWith('raw'))!;
  const floor = runs.find((r) => r.what.startsWith('floor'))!;
  const ratioAt = (c: number, batchSize: number) => {
    const hearth = runs.find((r) => r.concurrency === c && r.batchSize === batchSize && r.what.startsWith('Hearth'))!;
    return hearth.jobsPerSec / rawAt(c).jobsPerSec;
  };
  const pct = (x: number) => `**${(x * 100).toFixed(0)} %**`;
  const [, batch] = BATCH_SIZES as [number, number];
  const md = `# Queue-triggered jobs: throughput

Measured ${new Date().toISOString().slice(0, 10)} on: \`${machineLine()}\`

- \`uname -a\`: \`${uname}\`
- CPU: ${cpu}, nproc ${os.availableParallelism()}, memory ${mem}

${N} jobs per row after ${WARMUP} warm-up jobs, added with one plain-bullmq \`addBulk\` per 1000; the clock runs from the
first add until the queue's completed set holds them all (polled every 5 ms); each row is the median of ${REPEATS} timed runs. Hearth rows: the \`jobs\` test fixture
(a node function that answers JSON, cpu ${FUNCTION_CPU}) on a queue trigger with the given concurrency (calls
in flight), one worker process, instances already warm; every job's call is recorded in
Postgres and completes in BullMQ with its own return value. Without a batch size each job
is one POST with CloudEvents headers into a runc container; with \`batchSize: ${batch}\` a call
carries the jobs that arrived while the previous call ran, up to ${batch}, as one CloudEvents
batch, and the function answers one result per event. Raw rows: a BullMQ Worker with a
no-op processor on the same Redis, in the same run. Floor: one job's POST sent straight to
one warm instance through the runtime's invoke client, one at a time. Target: Hearth at
least a third of raw.

| path | concurrency | batch | jobs | seconds | jobs/s | each run, jobs/s |
|---|---|---|---|---|---|---|
${runs.map((r) => `| ${r.what} | ${r.concurrency} | ${r.batchSize} | ${r.jobs} | ${r.seconds.toFixed(2)} | ${r.jobsPerSec.toFixed(0)} | ${r.each.join(', ')} |`).join('\n')}

Hearth / raw, one job per call: ${pct(ratioAt(1, 1))} at concurrency 1, ${pct(ratioAt(8, 1))} at concurrency 8.
Hearth / raw, \`batchSize: ${batch}\`: ${pct(ratioAt(1, batch))} at concurrency 1, ${pct(ratioAt(8, batch))} at concurrency 8.
One job per call at concurrency 1 / floor: ${pct(runs[0]!.jobsPerSec / floor.jobsPerSec)}; the floor itself (one HTTP round trip
into a warm sandbox per job, no queue) is ${pct(floor.jobsPerSec / rawAt(1).jobsPerSec)} of raw BullMQ at concurrency 1. Batches share
the round trip among the jobs that waited.

Run it again with \`npx tsx bench/queue-throughput.ts -n ${N}\`.
`;
  const file = await writeResult('queue-throughput', md, { n: N, uname, cpu, nproc: os.availableParallelism(), memoryBytes: os.totalmem(), runs, ratio: { c1: ratioAt(1, 1), c8: ratioAt(8, 1), [`c1b${batch}`]: ratioAt(1, batch), [`c8b${batch}`]: ratioAt(8, batch) } });
  console.log(md);
  console.log(`written to ${file}`);
} finally {
  await stack.stopApps();
  for (const c of CONCURRENCIES) for (const b of BATCH_SIZES) await deleteTriggerQueue(hearthQueue(c, b));
  if (image) await deleteImage(image);
  await db.drop();
  await deleteRedisPrefix(prefix);
  await fs.rm(stack.home, { recursive: true, force: true });
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
}
