// Queue triggers end to end: a producer that knows only bullmq and the queue name triggers
// the function, reads its answer as the job's return value, sees retries with backoff and
// the failed set; jobs added over HTTP and the CLI; trigger changes without restarts; and a
// worker SIGKILLed mid-job whose job completes once on the other worker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { Job, Queue, QueueEvents } from 'bullmq';
import { redisConnection } from '@hearth/core';
import { createTestDatabase, deleteRedisPrefix, testEnv, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { runCli, startStack, type AppProcess, type TestStack } from '../helpers/stack.ts';
import {
  cleanupKilledWorker,
  deleteImage,
  deleteTriggerQueue,
  deployJobsFixture,
  json,
  putFunction,
  readBatchSizes,
  readRuns,
  sleep,
  startExtraWorker,
  waitFor,
  waitForConsumers,
} from '../helpers/triggers.ts';

const prefix = uniquePrefix('queue');
const fnName = `${prefix}-fn`;
const otherName = `${prefix}-other`;
const queueName = `${prefix}-orders`;
const movedName = `${prefix}-moved`;
const batchFn = `${prefix}-batch`;
const batchQueueName = `${prefix}-batched`;
const BACKOFF_MS = 400;
const TIMEOUT_MS = 4000;

// Exactly what a user's producer does: the package, a connection, the queue name.
const connection = redisConnection(testEnv().redisUrl);
let producer: Queue;
let events: QueueEvents;
let db: TestDatabase;
let stack: TestStack;
let image = '';
let workdir = '';
let extra: { worker: AppProcess; home: string; env: NodeJS.ProcessEnv } | undefined;
let killedEnv: NodeJS.ProcessEnv | undefined;

const spec = (extraFields: Record<string, unknown> = {}) => ({
  name: fnName,
  timeoutMs: TIMEOUT_MS,
  triggers: [{ queue: queueName, attempts: 3, backoff: { type: 'fixed', delay: BACKOFF_MS }, concurrency: 2 }],
  ...extraFields,
});

before(async () => {
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  // Short locks and stalled checks, so the SIGKILL test sees the job recovered in seconds.
  stack = await startStack({ prefix, databaseUrl: db.url, env: { HEARTH_LOCK_GRACE_MS: '1000', HEARTH_STALLED_INTERVAL_MS: '1000' } });
  ({ image, workdir } = await deployJobsFixture(stack, fnName));
  await putFunction(stack, image, spec());
  producer = new Queue(queueName, { connection });
  events = new QueueEvents(queueName, { connection });
  await events.waitUntilReady();
  await waitForConsumers(producer, 1);
});

after(async () => {
  if (process.env.HEARTH_TEST_DUMP) {
    await fs.writeFile(`${process.env.HEARTH_TEST_DUMP}.a`, stack?.worker.output() ?? '');
    await fs.writeFile(`${process.env.HEARTH_TEST_DUMP}.b`, extra?.worker.output() ?? '');
  }
  await events?.close();
  await producer?.close();
  await extra?.worker.stop();
  await stack?.stopApps();
  if (killedEnv) await cleanupKilledWorker(killedEnv);
  if (image) await deleteImage(image);
  await db?.drop();
  await deleteRedisPrefix(prefix);
  await deleteTriggerQueue(queueName);
  await deleteTriggerQueue(movedName);
  await deleteTriggerQueue(batchQueueName);
  if (stack && !process.env.HEARTH_TEST_DUMP) await fs.rm(stack.home, { recursive: true, force: true });
  if (extra && !process.env.HEARTH_TEST_DUMP) await fs.rm(extra.home, { recursive: true, force: true });
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

const getCall = async (id: string) => json(await fetch(`${stack.gatewayUrl}/calls/${encodeURIComponent(id)}`, { headers: stack.authHeaders }));

test('a plain bullmq producer triggers the function, which gets the data as JSON with CloudEvents headers, and reads its answer as the return value', async () => {
  const job = await producer.add('order-created', { order: 42, items: ['tea'] });
  const value = await job.waitUntilFinished(events, 30_000);
  assert.deepEqual(value.received, { order: 42, items: ['tea'] });
  assert.equal(value.method, 'POST');
  assert.equal(value.contentType, 'application/json');
  assert.deepEqual(value.ce, { id: job.id, type: 'dev.hearth.queue.job', source: queueName, specversion: '1.0' });
  // The record of a success is written in the next batch, a few ms after the job completed.
  const call = await waitFor('the call record', async () => {
    const c = await getCall(`${queueName}:${job.id}`);
    return c.status === 'succeeded' ? c : undefined;
  });
  assert.equal(call.kind, 'queue');
  assert.deepEqual(call.result.returnValue, value);
});

test('a failing job is retried per the trigger (attempts 3, fixed backoff) and completes on the third attempt', async () => {
  const job = await producer.add('flaky', { failTimes: 2 });
  const t0 = Date.now();
  const value = await job.waitUntilFinished(events, 30_000);
  assert.equal(value.count, 3, 'the third run answered');
  assert.ok(Date.now() - t0 >= 2 * BACKOFF_MS, 'two backoffs were waited');
  const done = await Job.fromId(producer, job.id!);
  assert.equal(done!.attemptsMade, 3);
  const runs = (await readRuns([stack.home], fnName)).filter((r) => r.key === job.id);
  assert.deepEqual(runs.map((r) => r.count), [1, 2, 3]);
});

test('after the last attempt the job stays in the failed set, is recorded as failed, and `hearth calls retry` runs it again', async () => {
  const job = await producer.add('doomed', { failTimes: 3 });
  await assert.rejects(job.waitUntilFinished(events, 30_000), /failing on purpose: run 3 of 3/);
  const failed = await producer.getFailed();
  const inSet = failed.find((j) => j.id === job.id);
  assert.ok(inSet, 'the job is in the failed set');
  assert.equal(inSet.attemptsMade, 3);
  const callId = `${queueName}:${job.id}`;
  const call = await waitFor('the failed record', async () => {
    const c = await getCall(callId);
    return c.status === 'failed' ? c : undefined;
  });
  assert.equal(call.attempts, 3);
  assert.match(call.error, /failing on purpose/);

  const ls = await runCli(['calls', 'ls', '--failed', '--function', fnName], { cwd: workdir, env: stack.env });
  assert.equal(ls.code, 0, ls.stderr);
  assert.ok(ls.stdout.includes(callId), ls.stdout);

  const retry = await runCli(['calls', 'retry', callId], { cwd: workdir, env: stack.env });
  assert.equal(retry.code, 0, retry.stderr);
  const value = await job.waitUntilFinished(events, 30_000);
  assert.equal(value.count, 4, 'the retry ran the original job (its fourth run) and it succeeded');
  assert.deepEqual(value.received, { failTimes: 3 });
  await waitFor('the succeeded record', async () => (await getCall(callId)).status === 'succeeded');
});

test('POST /queues/:queue and `hearth queue add` add jobs; a job id is an idempotency key', async () => {
  const res = await fetch(`${stack.gatewayUrl}/queues/${queueName}?jobId=${prefix}-http-1`, { method: 'POST', headers: stack.authHeaders, body: JSON.stringify({ via: 'http' }) });
  assert.equal(res.status, 202);
  const added = await json(res);
  assert.equal(added.function, fnName);
  const job = (await Job.fromId(producer, added.jobId))!;
  assert.deepEqual((await job.waitUntilFinished(events, 30_000)).received, { via: 'http' });

  const again = await fetch(`${stack.gatewayUrl}/queues/${queueName}?jobId=${prefix}-http-1`, { method: 'POST', headers: stack.authHeaders, body: JSON.stringify({ via: 'http' }) });
  assert.equal(again.status, 200);
  assert.equal((await json(again)).duplicate, true);

  const cli = await runCli(['queue', 'add', queueName, '--data', '{"via":"cli"}', '--job-id', `${prefix}-cli-1`], { cwd: workdir, env: stack.env });
  assert.equal(cli.code, 0, cli.stderr);
  const out = JSON.parse(cli.stdout);
  assert.equal(out.jobId, `${prefix}-cli-1`);
  const cliJob = (await Job.fromId(producer, out.jobId))!;
  assert.deepEqual((await cliJob.waitUntilFinished(events, 30_000)).received, { via: 'cli' });
  const dup = await runCli(['queue', 'add', queueName, '--data', '{"via":"cli"}', '--job-id', `${prefix}-cli-1`], { cwd: workdir, env: stack.env });
  assert.equal(dup.code, 0, dup.stderr);
  assert.match(dup.stderr, /already in queue/);
  await sleep(500);
  const runs = (await readRuns([stack.home], fnName)).filter((r) => r.key === `${prefix}-cli-1` || r.key === `${prefix}-http-1`);
  assert.equal(runs.length, 2, 'each id ran once');

  const nobody = await fetch(`${stack.gatewayUrl}/queues/${prefix}-nobody`, { method: 'POST', headers: stack.authHeaders, body: '{}' });
  assert.equal(nobody.status, 404);
  assert.match((await json(nobody)).error, /no function is triggered by queue/);
  const notJson = await fetch(`${stack.gatewayUrl}/queues/${queueName}`, { method: 'POST', headers: stack.authHeaders, body: 'not json' });
  assert.equal(notJson.status, 400);
});

test('a queue triggers one function: a second binding is refused with 409', async () => {
  const res = await fetch(`${stack.gatewayUrl}/system/functions/${otherName}`, {
    method: 'PUT',
    headers: { ...stack.authHeaders, 'content-type': 'application/json' },
    body: JSON.stringify({ image, spec: { name: otherName, runtime: 'node', handler: 'index.js', triggers: [{ queue: queueName }] } }),
  });
  assert.equal(res.status, 409);
  assert.match((await json(res)).error, /already triggers function/);
});

test('with batchSize, jobs that arrive together share calls as one CloudEvents batch, and each completes with its own result', async () => {
  await putFunction(stack, image, {
    name: batchFn,
    timeoutMs: TIMEOUT_MS,
    triggers: [{ queue: batchQueueName, batchSize: 5, concurrency: 1, attempts: 2, backoff: { type: 'fixed', delay: BACKOFF_MS } }],
  });
  const batched = new Queue(batchQueueName, { connection });
  const batchEvents = new QueueEvents(batchQueueName, { connection });
  try {
    // Twenty jobs waited on at once: more listeners than EventEmitter's default warns about.
    batchEvents.setMaxListeners(50);
    await batchEvents.waitUntilReady();
    await waitForConsumers(batched, 1);
    const jobs = await batched.addBulk(Array.from({ length: 20 }, (_, n) => ({ name: 'item', data: { n } })));
    const values = await Promise.all(jobs.map((j) => j.waitUntilFinished(batchEvents, 30_000)));
    values.forEach((v, n) => {
      assert.deepEqual(v.received, { n }, 'its own event\'s data');
      assert.deepEqual(v.ce, { id: jobs[n]!.id, type: 'dev.hearth.queue.job', source: batchQueueName, specversion: '1.0' });
      assert.equal(v.count, 1);
    });
    const sizes = await readBatchSizes([stack.home], batchFn);
    assert.equal(sizes.reduce((a, b) => a + b, 0), 20, 'every job was sent once');
    assert.ok(Math.max(...sizes) <= 5, `no batch above batchSize: ${sizes}`);
    assert.ok(sizes.length < 20, `jobs shared calls: ${sizes}`);
    const call = await waitFor('the call record', async () => {
      const c = await getCall(`${batchQueueName}:${jobs[7]!.id}`);
      return c.status === 'succeeded' ? c : undefined;
    });
    assert.deepEqual(call.result.returnValue, values[7]);

    // Lambda's batchItemFailures: the events named fail this attempt and are retried; the rest complete once.
    const [flaky, fine, doomed] = await batched.addBulk([
      { name: 'flaky', data: { failTimes: 1 } },
      { name: 'fine', data: { plain: true } },
      { name: 'doomed', data: { failTimes: 5 } },
    ]);
    // (An event that succeeds beside a failure has no return value: the answer lists only failures.)
    await flaky!.waitUntilFinished(batchEvents, 30_000);
    await fine!.waitUntilFinished(batchEvents, 30_000);
    await assert.rejects(doomed!.waitUntilFinished(batchEvents, 30_000), /failing on purpose: run 2 of 5/);
    const runsOf = async (job: Job) => (await readRuns([stack.home], batchFn)).filter((r) => r.key === job.id).map((r) => r.count);
    assert.deepEqual(await runsOf(flaky!), [1, 2], 'failed once, then succeeded');
    assert.deepEqual(await runsOf(fine!), [1], 'a completed event is not run again with its batch');
    assert.deepEqual(await runsOf(doomed!), [1, 2]);
    assert.equal((await Job.fromId(batched, fine!.id!))!.attemptsMade, 1);
    assert.equal((await Job.fromId(batched, flaky!.id!))!.attemptsMade, 2);
    const failed = await waitFor('the failed record', async () => {
      const c = await getCall(`${batchQueueName}:${doomed!.id}`);
      return c.status === 'failed' ? c : undefined;
    });
    assert.equal(failed.attempts, 2);

    // An answer that does not fit the batch fails all of it, saying why.
    const bad = await batched.add('bad', { badBatch: true });
    await assert.rejects(bad.waitUntilFinished(batchEvents, 30_000), /answered a batch of 1 event with an array of 0 results/);
  } finally {
    await batchEvents.close();
    await batched.close();
  }
});

test('a worker SIGKILLed mid-job leaves the job to the stalled check; it completes on the other worker, once', async () => {
  extra = await startExtraWorker(stack, 'b', { HEARTH_LOCK_GRACE_MS: '1000', HEARTH_STALLED_INTERVAL_MS: '1000' });
  await waitForConsumers(producer, 2);
  const homes = [stack.home, extra.home];
  const job = await producer.add('slow', { sleepMs: 2500 });
  const started = await waitFor('the first run to start', async () => (await readRuns(homes, fnName)).find((r) => r.key === job.id), 20_000, 50);
  const victim = started.home === stack.home ? stack.worker : extra.worker;
  const survivorHome = started.home === stack.home ? extra.home : stack.home;
  killedEnv = started.home === stack.home ? stack.env : extra.env;
  victim.child.kill('SIGKILL');

  const value = await job.waitUntilFinished(events, 40_000);
  assert.deepEqual(value.received, { sleepMs: 2500 });
  const runs = (await readRuns(homes, fnName)).filter((r) => r.key === job.id);
  assert.equal(runs.length, 2, 'started on the killed worker, run again on the live one');
  assert.ok(runs.some((r) => r.home === survivorHome), 'the live worker ran it');
  const done = (await Job.fromId(producer, job.id!))!;
  assert.equal(await done.getState(), 'completed');
  assert.equal(done.attemptsMade, 1, 'completed once: the stall is not a failed attempt');
  const call = await waitFor('the call record', async () => {
    const c = await getCall(`${queueName}:${job.id}`);
    return c.status === 'succeeded' ? c : undefined;
  });
  assert.deepEqual(call.result.returnValue, value);
});

test('trigger changes take effect on redeploy without restarts, and deleting the function stops its triggers', async () => {
  // Whatever worker is left consumes the queue now; move the trigger to another queue.
  await putFunction(stack, image, spec({ triggers: [{ queue: movedName }] }));
  await waitForConsumers(producer, 0);
  const moved = new Queue(movedName, { connection });
  const movedEvents = new QueueEvents(movedName, { connection });
  try {
    await waitForConsumers(moved, 1);
    const job = await moved.add('x', { where: 'moved' });
    await movedEvents.waitUntilReady();
    assert.deepEqual((await job.waitUntilFinished(movedEvents, 30_000)).received, { where: 'moved' });

    const del = await fetch(`${stack.gatewayUrl}/system/functions/${fnName}`, { method: 'DELETE', headers: stack.authHeaders });
    assert.equal(del.status, 204);
    await waitForConsumers(moved, 0);
    const orphan = await moved.add('y', { where: 'nobody' });
    await sleep(1000);
    assert.equal(await orphan.getState(), 'waiting', 'a deleted function consumes nothing');
  } finally {
    await movedEvents.close();
    await moved.close();
  }
});
