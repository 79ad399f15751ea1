// Async HTTP calls end to end: real gateway and worker processes, Redis, Postgres, the
// registry and runc. 202 + X-Call-Id, the callback (retried while the receiver fails),
// GET /calls/:id, failures kept and retried from the CLI, maxEventAgeSec, and a long call
// that the stalled-job checker must leave alone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs/promises';
import { Queue } from 'bullmq';
import { asyncQueueFor, redisConnection } from '@hearth/core';
import { createTestDatabase, deleteRedisPrefix, testEnv, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { runCli, startStack, type TestStack } from '../helpers/stack.ts';
import { deleteImage, deployJobsFixture, json, putFunction, readRuns, sleep, waitFor } from '../helpers/triggers.ts';

const prefix = uniquePrefix('async');
const fnName = `${prefix}-fn`;
const expiringName = `${prefix}-old`;

interface Delivery {
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
  answered: number;
}

let db: TestDatabase;
let stack: TestStack;
let image = '';
let workdir = '';
let receiver: http.Server;
let receiverUrl = '';
const deliveries = new Map<string, Delivery[]>();
/** How many deliveries per path the receiver refuses (503) before it accepts one. */
const refuseFirst = new Map<string, number>();

before(async () => {
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  // Stalled-job checks every 500 ms: a long call must survive many of them.
  stack = await startStack({ prefix, databaseUrl: db.url, env: { HEARTH_STALLED_INTERVAL_MS: '500', HEARTH_LOCK_GRACE_MS: '2000' } });
  ({ image, workdir } = await deployJobsFixture(stack, fnName));
  receiver = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const list = deliveries.get(req.url!) ?? [];
    const status = list.length < (refuseFirst.get(req.url!) ?? 0) ? 503 : 200;
    list.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now(), answered: status });
    deliveries.set(req.url!, list);
    res.writeHead(status).end();
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});

after(async () => {
  await stack?.stopApps();
  receiver?.close();
  if (image) await deleteImage(image);
  await db?.drop();
  await deleteRedisPrefix(prefix);
  if (stack) await fs.rm(stack.home, { recursive: true, force: true });
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

const callAsync = (name: string, sub: string, init: RequestInit = {}) => fetch(`${stack.gatewayUrl}/async-function/${name}${sub}`, { method: 'POST', ...init });
const getCall = async (id: string) => json(await fetch(`${stack.gatewayUrl}/calls/${encodeURIComponent(id)}`, { headers: stack.authHeaders }));
const waitForStatus = (id: string, status: string, timeoutMs = 30_000) =>
  waitFor(`call ${id} to be ${status}`, async () => {
    const call = await getCall(id);
    return call.status === status ? call : undefined;
  }, timeoutMs, 100);

test('an async call answers 202 at once, runs, POSTs its result to X-Callback-Url (retried while the receiver fails) and GET /calls/:id says succeeded', async () => {
  refuseFirst.set('/cb1', 2);
  const t0 = Date.now();
  const res = await callAsync(fnName, '/text', { body: 'hello async', headers: { 'x-callback-url': `${receiverUrl}/cb1`, 'content-type': 'text/plain' } });
  assert.equal(res.status, 202);
  assert.ok(Date.now() - t0 < 2000, 'answered before the function ran');
  const callId = res.headers.get('x-call-id');
  assert.ok(callId);
  assert.equal((await json(res)).callId, callId);

  const call = await waitForStatus(callId, 'succeeded');
  assert.equal(call.kind, 'async');
  assert.equal(call.function, fnName);
  assert.equal(call.httpStatus, 200);
  assert.equal(call.result.status, 200);
  assert.equal(call.result.body, 'plain hello async');
  assert.ok(call.durationMs >= 0);

  const list = await waitFor('three callback deliveries', () => ((deliveries.get('/cb1')?.length ?? 0) >= 3 ? deliveries.get('/cb1') : undefined), 20_000);
  assert.deepEqual(list.map((d) => d.answered), [503, 503, 200]);
  const ok = list[2]!;
  assert.equal(ok.body, 'plain hello async');
  assert.equal(ok.headers['content-type'], 'text/x-plain-test');
  assert.equal(ok.headers['x-call-id'], callId);
  assert.equal(ok.headers['x-function-name'], fnName);
  assert.equal(ok.headers['x-function-status'], '200');
  assert.match(String(ok.headers['x-duration-seconds']), /^\d+\.\d{3}$/);
  assert.ok(list[2]!.at - list[1]!.at > list[1]!.at - list[0]!.at, 'the wait between deliveries grows (exponential backoff)');
  await sleep(1500);
  assert.equal(deliveries.get('/cb1')!.length, 3, 'no delivery after one was accepted');
});

test('a failed async call is kept with its error, listed by `hearth calls ls --failed`, and `hearth calls retry` runs it again with the same payload', async () => {
  const res = await callAsync(fnName, '/fail?failTimes=1&key=retry-me', { body: '{"order":7}', headers: { 'content-type': 'application/json', 'x-callback-url': `${receiverUrl}/cb2` } });
  assert.equal(res.status, 202);
  const callId = res.headers.get('x-call-id')!;
  const failed = await waitForStatus(callId, 'failed');
  assert.equal(failed.httpStatus, 500);
  assert.match(failed.error, /failing on purpose/);
  const cb = await waitFor('the failure callback', () => deliveries.get('/cb2')?.[0]);
  assert.equal(cb.headers['x-function-status'], '500');

  const ls = await runCli(['calls', 'ls', '--failed'], { cwd: workdir, env: stack.env });
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, new RegExp(`${callId}\\s+async\\s+${fnName}\\s+failed`));

  const show = await runCli(['calls', 'show', callId], { cwd: workdir, env: stack.env });
  assert.equal(show.code, 0, show.stderr);
  assert.equal(JSON.parse(show.stdout).status, 'failed');

  const retry = await runCli(['calls', 'retry', callId], { cwd: workdir, env: stack.env });
  assert.equal(retry.code, 0, retry.stderr);
  assert.equal(retry.stdout.trim(), callId);
  const done = await waitForStatus(callId, 'succeeded');
  assert.equal(done.attempts, 2);
  const body = JSON.parse(done.result.body);
  assert.deepEqual(body.received, { order: 7 }, 'the retry got the original body');
  assert.equal(body.path, '/fail');
  assert.equal(body.count, 2);
  const second = await waitFor('the retry callback', () => deliveries.get('/cb2')?.[1]);
  assert.equal(second.headers['x-function-status'], '200');

  const again = await runCli(['calls', 'retry', callId], { cwd: workdir, env: stack.env });
  assert.notEqual(again.code, 0, 'a succeeded call is not retried');
  assert.match(again.stderr, /succeeded; only failed or expired calls can be retried/);
});

test('a call that waited longer than maxEventAgeSec is not run and is recorded as expired', async () => {
  await putFunction(stack, image, { name: expiringName, maxEventAgeSec: 1 });
  const queue = new Queue(asyncQueueFor(8000), { connection: redisConnection(testEnv().redisUrl), prefix });
  try {
    await queue.pause();
    const res = await callAsync(expiringName, '/', { body: '{}', headers: { 'x-callback-url': `${receiverUrl}/cb3` } });
    const callId = res.headers.get('x-call-id')!;
    assert.equal((await getCall(callId)).status, 'queued');
    await sleep(1500);
    await queue.resume();
    const call = await waitForStatus(callId, 'expired');
    assert.match(call.error, /maxEventAgeSec/);
    const cb = await waitFor('the expiry callback', () => deliveries.get('/cb3')?.[0]);
    assert.equal(cb.headers['x-function-status'], '504');
    assert.deepEqual(await readRuns([stack.home], expiringName), [], 'the function never ran');
  } finally {
    await queue.resume().catch(() => {});
    await queue.close();
  }
});

test('a call that runs far past the stalled-job check interval runs once and delivers once', async () => {
  const res = await callAsync(fnName, '/?sleepMs=4000&key=long-one', { headers: { 'x-callback-url': `${receiverUrl}/cb4` } });
  const callId = res.headers.get('x-call-id')!;
  await waitForStatus(callId, 'running', 10_000);
  const call = await waitForStatus(callId, 'succeeded', 30_000);
  assert.equal(call.attempts, 1);
  await sleep(1500);
  const runs = (await readRuns([stack.home], fnName)).filter((r) => r.key === 'long-one');
  assert.equal(runs.length, 1, `ran once, not ${runs.length} times`);
  assert.equal(deliveries.get('/cb4')?.length, 1);
});

test('async errors: unknown function 404, bad callback URL 400', async () => {
  const missing = await callAsync(`${prefix}-nope`, '/');
  assert.equal(missing.status, 404);
  const bad = await callAsync(fnName, '/', { headers: { 'x-callback-url': 'not a url' } });
  assert.equal(bad.status, 400);
  assert.match((await json(bad)).error, /X-Callback-Url/);
  const unknown = await fetch(`${stack.gatewayUrl}/calls/${prefix}-no-such-call`, { headers: stack.authHeaders });
  assert.equal(unknown.status, 404);
});
