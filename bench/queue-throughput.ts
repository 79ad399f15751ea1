/**
 * Throughput of queue-triggered jobs, end to end: jobs/s from `add` (a plain bullmq
 * producer, addBulk) until the last one is completed, with a warm function, at trigger
 * concurrency 1 and 8; beside raw BullMQ with a no-op processor on the same Redis, in the
 * same run, measured the same way (QueueEvents `completed`).
 * Run: `npx tsx bench/queue-throughput.ts [-n 2000]` with the local stack's services up.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { redisConnection } from '@hearth/core';
import { createTestDatabase, deleteRedisPrefix, testEnv, uniquePrefix } from '../test/helpers/services.ts';
import { startStack } from '../test/helpers/stack.ts';
import { deleteImage, deleteTriggerQueue, deployJobsFixture, putFunction, waitForConsumers } from '../test/helpers/triggers.ts';
import { machineLine, writeResult } from './lib.ts';

const argN = process.argv.indexOf('-n');
const N = (argN > 0 ? Number(process.argv[argN + 1]) : 0) || 2000;
const prefix = uniquePrefix('qbench');
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

const db = await createTestDatabase(prefix.replaceAll('-', '_'));
const stack = await startStack({ prefix, databaseUrl: db.url });
let image = '';
let workdir = '';
const runs: Run[] = [];
try {
  const fnName = `${prefix}-fn`;
  ({ image, workdir } = await deployJobsFixture(stack, fnName));
  for (const concurrency of [1, 8]) {
    const queueName = `${prefix}-q${concurrency}`;
    await putFunction(stack, image, { name: fnName, timeoutMs: 10000, scale: { minWarm: 0, maxInstances: 10, idleTtlSec: 600 }, triggers: [{ queue: queueName, concurrency }] });
    const probe = new Queue(queueName, { connection });
    await waitForConsumers(probe, 1);
    await probe.close();
    // Warm: as many instances as the concurrency, started before the clock runs.
    await drain(queueName, Math.max(50, concurrency * 20), 'warmup');
    const seconds = await drain(queueName, N, 'bench');
    runs.push({ what: 'Hearth queue trigger → warm runc function', concurrency, jobs: N, seconds, jobsPerSec: N / seconds });
    runs.push(await rawBullmq(concurrency, N));
    await deleteTriggerQueue(queueName);
  }

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
processor on the same Redis, in the same run. Target: Hearth at least a third of raw.

| path | concurrency | jobs | seconds | jobs/s |
|---|---|---|---|---|
${runs.map((r) => `| ${r.what} | ${r.concurrency} | ${r.jobs} | ${r.seconds.toFixed(2)} | ${r.jobsPerSec.toFixed(0)} |`).join('\n')}

Hearth / raw: **${(ratioAt(1) * 100).toFixed(0)} %** at concurrency 1, **${(ratioAt(8) * 100).toFixed(0)} %** at concurrency 8.

Run it again with \`npx tsx bench/queue-throughput.ts -n ${N}\`.
`;
  const file = await writeResult('queue-throughput', md, { n: N, uname, cpu, nproc: os.availableParallelism(), memoryBytes: os.totalmem(), runs, ratio: { c1: ratioAt(1), c8: ratioAt(8) } });
  console.log(md);
  console.log(`written to ${file}`);
} finally {
  await stack.stopApps();
  if (image) await deleteImage(image);
  await db.drop();
  await deleteRedisPrefix(prefix);
  await fs.rm(stack.home, { recursive: true, force: true });
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
}
