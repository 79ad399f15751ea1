// Cron triggers end to end: a per-second schedule (6 fields, seconds first) with two
// workers fires each tick once; redeploying without it, or deleting the function, removes
// the job scheduler and the ticks stop.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { Queue } from 'bullmq';
import { ASYNC_LOCK_CLASSES_SEC, asyncQueueName, redisConnection } from '@hearth/core';
import { createTestDatabase, deleteRedisPrefix, testEnv, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { startStack, type AppProcess, type TestStack } from '../helpers/stack.ts';
import { deleteImage, deployJobsFixture, json, putFunction, readRuns, sleep, startExtraWorker, waitFor } from '../helpers/triggers.ts';

const prefix = uniquePrefix('cron');
const fnName = `${prefix}-fn`;
const EVERY_SECOND = '* * * * * *';

let db: TestDatabase;
let stack: TestStack;
let extra: { worker: AppProcess; home: string } | undefined;
let image = '';
let workdir = '';
let queues: Queue[] = [];

before(async () => {
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  stack = await startStack({ prefix, databaseUrl: db.url });
  extra = await startExtraWorker(stack, 'b');
  ({ image, workdir } = await deployJobsFixture(stack, fnName));
  queues = ASYNC_LOCK_CLASSES_SEC.map((s) => new Queue(asyncQueueName(s), { connection: redisConnection(testEnv().redisUrl), prefix }));
});

after(async () => {
  await Promise.all(queues.map((q) => q.close()));
  await extra?.worker.stop();
  await stack?.stopApps();
  if (image) await deleteImage(image);
  await db?.drop();
  await deleteRedisPrefix(prefix);
  if (stack) await fs.rm(stack.home, { recursive: true, force: true });
  if (extra) await fs.rm(extra.home, { recursive: true, force: true });
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

const schedulers = async () => (await Promise.all(queues.map((q) => q.getJobSchedulers(0, -1)))).flat();
const tickRuns = async () => (await readRuns([stack.home, extra!.home], fnName)).filter((r) => r.key.startsWith('repeat:'));

test('a per-second cron trigger fires once per tick with two workers, with CloudEvents headers', async () => {
  await putFunction(stack, image, { name: fnName, triggers: [{ cron: EVERY_SECOND }] });
  await waitFor('the job scheduler', async () => (await schedulers()).length === 1);
  // Both workers take jobs from the queue the ticks land on (timeoutMs 8000 → the 10 s class).
  assert.equal((await queues[0]!.getWorkers()).length, 2);
  await waitFor('five ticks', async () => (await tickRuns()).length >= 5, 30_000, 200);
  const runs = await tickRuns();
  const perTick = new Map<string, number>();
  for (const r of runs) perTick.set(r.key, (perTick.get(r.key) ?? 0) + 1);
  for (const [tick, n] of perTick) assert.equal(n, 1, `tick ${tick} ran ${n} times`);
  const millis = [...perTick.keys()].map((k) => Number(k.split(':').at(-1))).sort((a, b) => a - b);
  for (let i = 1; i < millis.length; i++) assert.equal((millis[i]! - millis[i - 1]!) % 1000, 0, 'ticks fall on whole seconds');

  // Rows are written in batches (up to 100 ms after the tick's job completes).
  const cron = await waitFor('five cron calls recorded', async () => {
    const calls = await json(await fetch(`${stack.gatewayUrl}/calls?function=${fnName}&limit=100`, { headers: stack.authHeaders }));
    const found = calls.filter((c: { kind: string }) => c.kind === 'cron');
    return found.length >= 5 && found;
  });
  const done = cron.find((c: { status: string }) => c.status === 'succeeded');
  assert.ok(done, 'a tick is recorded as succeeded');
  const body = JSON.parse(done.result.body);
  assert.equal(body.ce.type, 'dev.hearth.cron.tick');
  assert.equal(body.ce.source, `/hearth/cron/${fnName}`);
  assert.equal(body.ce.specversion, '1.0');
  assert.equal(body.received.cron, EVERY_SECOND);
});

test('redeploying without the cron trigger removes the scheduler and the ticks stop', async () => {
  await putFunction(stack, image, { name: fnName, triggers: [] });
  await waitFor('the scheduler to be removed', async () => (await schedulers()).length === 0);
  await sleep(1200);
  const before = (await tickRuns()).length;
  await sleep(2500);
  assert.equal((await tickRuns()).length, before, 'no tick after the trigger was removed');
});

test('a changed pattern replaces the scheduler; deleting the function removes it', async () => {
  await putFunction(stack, image, { name: fnName, triggers: [{ cron: '*/2 * * * * *', tz: 'Europe/Paris' }] });
  const [s] = await waitFor('the new scheduler', async () => {
    const list = await schedulers();
    return list.length === 1 ? list : undefined;
  });
  assert.equal(s!.pattern, '*/2 * * * * *');
  assert.equal(s!.tz, 'Europe/Paris');
  const del = await fetch(`${stack.gatewayUrl}/system/functions/${fnName}`, { method: 'DELETE', headers: stack.authHeaders });
  assert.equal(del.status, 204);
  await waitFor('the scheduler to be removed', async () => (await schedulers()).length === 0);
});

test('an invalid cron pattern is refused at deploy, naming the trigger', async () => {
  const res = await fetch(`${stack.gatewayUrl}/system/functions/${fnName}`, {
    method: 'PUT',
    headers: { ...stack.authHeaders, 'content-type': 'application/json' },
    body: JSON.stringify({ image, spec: { name: fnName, runtime: 'node', handler: 'index.js', triggers: [{ cron: '61 * * * *' }] } }),
  });
  assert.equal(res.status, 400);
  assert.match((await json(res)).error, /triggers\.0\.cron/);
});
