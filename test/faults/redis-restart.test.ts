// Redis restarted under a stack (a private redis-server with its append-only file, never the
// shared one): the gateway and the worker reconnect by themselves and sync calls work again;
// async calls queued while no worker ran survive a crash of Redis and all run, once each.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Queue } from 'bullmq';
import { asyncQueueFor, redisConnection } from '@hearth/core';
import { createTestDatabase, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { startApp, startStack, type AppProcess, type TestStack } from '../helpers/stack.ts';
import { deleteImage, readRuns, sleep, waitFor } from '../helpers/triggers.ts';
import { containers, deployFixture, privateRedis, request, show, type Answer, type PrivateService } from './fault-kit.ts';

const prefix = uniquePrefix('fault-redis');
const fnName = `${prefix}-fn`;

let redis: PrivateService;
let db: TestDatabase;
let stack: TestStack;
/** The worker serving now: the stack's, until a test starts another. */
let worker: AppProcess;
let image = '';
let workdir = '';

before(async () => {
  redis = await privateRedis();
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  stack = await startStack({ prefix, databaseUrl: db.url, env: { HEARTH_STEM_CELLS: '0', REDIS_URL: redis.address } });
  worker = stack.worker;
  ({ image, workdir } = await deployFixture(stack, 'jobs', fnName));
});

after(async () => {
  if (process.env.HEARTH_TEST_DEBUG) console.log(stack?.gateway.output(), worker?.output());
  await worker?.stop();
  await stack?.stopApps();
  if (image) await deleteImage(image);
  await db?.drop();
  // Every key of the test goes with the server's data folder.
  await redis?.destroy();
  if (stack) {
    const left = await containers(prefix);
    await fs.rm(stack.home, { recursive: true, force: true });
    assert.deepEqual(left, []);
  }
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

/** The jobs fixture's timeoutMs (8 s) plus the gateway's 60 s allowance for a start: how long a sync caller may wait. */
const DEADLINE_MS = 68_000;
const call = (key: string) => request(`${stack.gatewayUrl}/function/${fnName}/?key=${key}`);
const callAsync = (key: string) => request(`${stack.gatewayUrl}/async-function/${fnName}/?key=${key}`, { method: 'POST', body: `{"key":"${key}"}`, headers: { 'content-type': 'application/json' } });
const getCall = (id: string) => request(`${stack.gatewayUrl}/calls/${encodeURIComponent(id)}`, { headers: stack.authHeaders });

/** The states of the async calls' jobs in Redis (job id = call id). */
async function jobStates(ids: string[]): Promise<string[]> {
  const queue = new Queue(asyncQueueFor(8000), { connection: redisConnection(redis.address), prefix });
  try {
    return await Promise.all(ids.map(async (id) => (await queue.getJob(id))?.getState() ?? 'missing'));
  } finally {
    await queue.close();
  }
}

async function syncWorksAgain(what: string): Promise<Answer> {
  return waitFor(`${what}: a sync call to succeed`, async () => {
    const a = await call(`${what}-${Date.now()}`);
    return a.status === 200 ? a : undefined;
  }, 30_000, 250);
}

test('a sync call while Redis is down answers a clear 503 within seconds, not a hang', async () => {
  const first = await call('first');
  assert.equal(first.status, 200, show(first));
  await redis.stop();
  let during: Answer;
  try {
    during = await request(`${stack.gatewayUrl}/function/${fnName}/?key=down`, {}, 20_000);
  } finally {
    await redis.start();
  }
  assert.notEqual(during.status, 0, `no answer within 20 s while Redis was down (${during.text})`);
  assert.equal(during.status, 503, show(during));
  assert.match(during.json?.error ?? '', /queue|redis/i, show(during));
});

test('a sync call in flight while Redis restarts is answered, and sync calls work again without restarting the gateway or the worker', async () => {
  await syncWorksAgain('before');
  // A clean restart (SIGTERM: Redis writes its files and exits), with a call sent while it is down.
  await redis.stop();
  const pending = request(`${stack.gatewayUrl}/function/${fnName}/?key=over-restart`, {}, DEADLINE_MS + 10_000);
  await sleep(2000);
  await redis.start();
  const over = await pending;
  assert.notEqual(over.status, 0, `the call sent while Redis was down got no answer within its deadline: ${show(over)}`);
  if (over.status !== 200) {
    assert.ok(over.status >= 500, show(over));
    assert.equal(typeof over.json?.error, 'string', `a JSON error: ${show(over)}`);
  }
  const again = await syncWorksAgain('after-restart');
  assert.equal(again.json.path, '/');

  // A crash (SIGKILL): no goodbye to the clients either.
  await redis.stop({ crash: true });
  await redis.start();
  await syncWorksAgain('after-crash');

  assert.equal(stack.gateway.child.exitCode, null, 'the gateway was not restarted');
  assert.equal(worker.child.exitCode, null, 'the worker was not restarted');
});

test('async calls queued while no worker runs survive a crash of Redis (AOF), and each runs once when a worker starts', async () => {
  await stack.worker.stop();
  const ids: string[] = [];
  const keys: string[] = [];
  for (let i = 0; i < 5; i++) {
    const key = `queued-${i}`;
    const res = await callAsync(key);
    assert.equal(res.status, 202, show(res));
    assert.ok(res.callId);
    ids.push(res.callId);
    keys.push(key);
  }
  assert.deepEqual(await jobStates(ids), ids.map(() => 'waiting'), 'the calls wait in Redis');

  // appendfsync everysec: what is older than a second is on disk, even when Redis is killed.
  await sleep(1500);
  await redis.stop({ crash: true });
  await redis.start();
  assert.ok((await fs.readdir(path.join(redis.home, 'redis'))).some((f) => f.startsWith('appendonly')), 'Redis keeps an append-only file');
  assert.deepEqual(await jobStates(ids), ids.map(() => 'waiting'), 'the queued calls are still in Redis after the crash');

  worker = await startApp('worker', stack.env, /worker ready/);
  for (const id of ids) {
    await waitFor(`call ${id} to succeed`, async () => {
      const c = await getCall(id);
      return c.json?.status === 'succeeded' ? c : undefined;
    }, 30_000, 200);
  }
  await sleep(1000);
  const runs = (await readRuns([stack.home], fnName)).filter((r) => keys.includes(r.key));
  assert.deepEqual(runs.map((r) => r.key).sort(), [...keys].sort(), 'each queued call ran once');
});
