/**
 * Throughput of queue-triggered jobs, end to end: jobs/s from `add` (a plain bullmq
 * producer, addBulk) until the last one is completed, with a warm function, at trigger
 * concurrency 1 and 8; beside raw BullMQ with a no-op processor on the same Redis, in the
 * same run, measured the same way (QueueEvents `completed`).
 * Run: `npx tsx bench/queue-throughput.ts [-n 2000]` with the local stack's services up.
 * BENCH_APPS_NODE_OPTIONS (e.g. `--import ./profile.mjs`) is passed to the gateway and worker, for profiling.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import { Queue, QueueEvents, Worker } from 'bullmq';
import path from 'node:path';
import { CLOUDEVENT_TYPES, cloudEventHeaders, redisConnection } from '@hearth/core';
import { ensureLayersUnpacked, openContentStore, parseReference, pullImage, RegistryClient } from '@hearth/oci';
import { createRuncSandbox } from '@hearth/runtime';
import { createTestDatabase, deleteRedisPrefix, testEnv, uniquePrefix } from '../test/helpers/services.ts';
import { startStack } from '../test/helpers/stack.ts';
import { deleteImage, deleteTriggerQueue, deployJobsFixture, putFunction, waitForConsumers } from '../test/helpers/triggers.ts';
import { machineLine, writeResult } from './lib.ts';

const argN = process.argv.indexOf('-n');
const N = (argN > 0 ? Number(process.argv[argN + 1]) : 0) || 2000;
// Short: the invoke socket path (<home>/instances/<id>/rt/host/invoke.sock) may hold at most 108 bytes.
const prefix = uniquePrefix('qb');
const connection = redisConnection(testEnv().redisUrl);

interface Run {
  what: string;
  concurrency: number;
  jobs: number;
  seconds: number;
  jobsPerSec: number;
}

/** Adds `n` jobs in one addBulk and resolves when QueueEvents has seen all of them complete. */
async function drain(queueName: string, n: number, tag: string): Promise<number> {
  const queue = new Queue(queueName, { connection });
  const events = new QueueEvents(queueName, { connection });
  await events.waitUntilReady();
  let done = 0;
  let failed = 0;
  const finished = new Promise<void>((resolve, reject) => {
    events.on('completed', () => {
      if (++done === n) resolve();
    });
    events.on('failed', ({ jobId, failedReason }) => {
      failed += 1;
      reject(new Error(`job ${jobId} failed: ${failedReason}`));
    });
  });
  // A failure may arrive while jobs are still being added; it is reported by the await below.
  finished.catch(() => {});
  const t0 = performance.now();
  for (let i = 0; i < n; i += 1000) {
    await queue.addBulk(Array.from({ length: Math.min(1000, n - i) }, (_, k) => ({ name: tag, data: { i: i + k } })));
  }
  await finished;
  const seconds = (performance.now() - t0) / 1000;
  if (failed) throw new Error(`${failed} jobs failed`);
  await events.close();
  await queue.close();
  return seconds;
}

async function rawBullmq(concurrency: number, n: number): Promise<Run> {
  const name = `${prefix}-raw-${concurrency}`;
  const worker = new Worker(name, async () => null, { connection, concurrency });
  await worker.waitUntilReady();
  try {
    await drain(name, Math.min(200, n), 'warmup');
    const seconds = await drain(name, n, 'raw');
    return { what: 'raw BullMQ, no-op processor', concurrency, jobs: n, seconds, jobsPerSec: n / seconds };
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
    limits: { memoryMb: 128, cpu: 0.5 },
    logPath: path.join(home, 'floor.log'),
  });
  try {
    await sandbox.start();
    const call = (i: number) =>
      sandbox.invoke(
        { method: 'POST', path: '/', query: '', headers: { 'content-type': 'application/json', ...cloudEventHeaders({ id: String(i), type: CLOUDEVENT_TYPES.queue, source: 'floor' }) }, body: Buffer.from(JSON.stringify({ i })) },
        { timeoutMs: 10000 },
      );
    for (let i = 0; i < 50; i++) await call(i);
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await call(i);
    const seconds = (performance.now() - t0) / 1000;
    return { what: 'floor: direct invoke of one warm instance (no queue)', concurrency: 1, jobs: n, seconds, jobsPerSec: n / seconds };
  } finally {
    await sandbox.stop();
    await fs.rm(home, { recursive: true, force: true });
  }
}

const db = await createTestDatabase(prefix.replaceAll('-', '_'));
const stack = await startStack({ prefix, databaseUrl: db.url, env: process.env.BENCH_APPS_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_APPS_NODE_OPTIONS } : {} });
let image = '';
let workdir = '';
const runs: Run[] = [];
try {
  const fnName = `${prefix}-fn`;
  ({ image, workdir } = await deployJobsFixture(stack, fnName));
  for (const concurrency of [1, 8]) {
    const queueName = `${prefix}-q${concurrency}`;
    await putFunction(stack, image, { name: fnName, timeoutMs: 10000, cpu: Number(process.env.BENCH_CPU ?? 0.5), scale: { minWarm: 0, maxInstances: 10, idleTtlSec: 600 }, triggers: [{ queue: queueName, concurrency }] });
    const probe = new Queue(queueName, { connection });
    await waitForConsumers(probe, 1);
    await probe.close();
    // Warm: as many instances as the concurrency, started before the clock runs.
    await drain(queueName, Math.max(50, concurrency * 20), 'warmup');
    const seconds = await drain(queueName, N, 'bench');
    runs.push({ what: 'Hearth queue trigger → warm runc function', concurrency, jobs: N, seconds, jobsPerSec: N / seconds });
    runs.push(await rawBullmq(concurrency, N));
  }

  runs.push(await directFloor(image, N));

  const uname = execFileSync('uname', ['-a'], { encoding: 'utf8' }).trim();
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  const mem = `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`;
  const ratioAt = (c: number) => {
    const hearth = runs.find((r) => r.concurrency === c && r.what.startsWith('Hearth'))!;
    const raw = runs.find((r) => r.concurrency === c && r.what.startsWith('raw'))!;
    return hearth.jobsPerSec / raw.jobsPerSec;
  };
  const md = `# Queue-triggered jobs: throughput

Measured ${new Date().toISOString().slice(0, 10)} on: \`${machineLine()}\`

- \`uname -a\`: \`${uname}\`
- CPU: ${cpu}, nproc ${os.availableParallelism()}, memory ${mem}

${N} jobs per row, added with one plain-bullmq \`addBulk\` per 1000; the clock runs from the
first add until QueueEvents reports the last \`completed\`. Hearth rows: the \`jobs\` test fixture
(a node function that answers JSON) on a queue trigger with the given concurrency, one worker
process, instances already warm; each job is a POST with CloudEvents headers into a runc
container, and its call is recorded in Postgres. Raw rows: a BullMQ Worker with a no-op
processor on the same Redis, in the same run. Floor: the same POST sent straight to one
warm instance through the runtime's invoke client, one at a time. Target: Hearth at least
a third of raw.

| path | concurrency | jobs | seconds | jobs/s |
|---|---|---|---|---|
${runs.map((r) => `| ${r.what} | ${r.concurrency} | ${r.jobs} | ${r.seconds.toFixed(2)} | ${r.jobsPerSec.toFixed(0)} |`).join('\n')}

Hearth / raw: **${(ratioAt(1) * 100).toFixed(0)} %** at concurrency 1, **${(ratioAt(8) * 100).toFixed(0)} %** at concurrency 8.
Hearth at concurrency 1 / floor: **${((runs[0]!.jobsPerSec / runs.at(-1)!.jobsPerSec) * 100).toFixed(0)} %**. Where the floor itself is
below a third of raw BullMQ, the function's own invoke path (runc instance, bootstrap,
handler) bounds the result, not the queue.

Run it again with \`npx tsx bench/queue-throughput.ts -n ${N}\`.
`;
  const file = await writeResult('queue-throughput', md, { n: N, uname, cpu, nproc: os.availableParallelism(), memoryBytes: os.totalmem(), runs, ratio: { c1: ratioAt(1), c8: ratioAt(8) } });
  console.log(md);
  console.log(`written to ${file}`);
} finally {
  await stack.stopApps();
  for (const c of [1, 8]) await deleteTriggerQueue(`${prefix}-q${c}`);
  if (image) await deleteImage(image);
  await db.drop();
  await deleteRedisPrefix(prefix);
  await fs.rm(stack.home, { recursive: true, force: true });
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
}
