// A worker SIGKILLed in the middle of a call while another worker runs. A sync caller gets
// the function's answer (run again by the live worker) or a clear 5xx JSON error that says
// the worker died, never a hang past its deadline; this is tried for a call from the shared queue (a cold start) and
// for one routed to the dead worker's own queue (it held the warm instance). An async call in
// flight at the kill runs again and completes, once. (Queue-trigger jobs under a SIGKILL are
// covered by test/e2e/queue-triggers.test.ts.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs/promises';
import { createTestDatabase, deleteRedisPrefix, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { startStack, type AppProcess, type TestStack } from '../helpers/stack.ts';
import { cleanupKilledWorker, deleteImage, readRuns, sleep, startExtraWorker, waitFor, type RunLine } from '../helpers/triggers.ts';
import { containers, deployFixture, request, show, type Answer } from './fault-kit.ts';

const prefix = uniquePrefix('fault-wk');
const fnName = `${prefix}-fn`;
/** The jobs fixture's timeoutMs (8 s) plus the gateway's 60 s allowance for a start: how long a sync caller may wait. */
const DEADLINE_MS = 68_000;
// Short locks for the async queues, so a dead worker's async job is taken again in seconds.
const LOCKS = { HEARTH_LOCK_GRACE_MS: '1000', HEARTH_STALLED_INTERVAL_MS: '1000' };

interface LiveWorker {
  app: AppProcess;
  home: string;
  env: NodeJS.ProcessEnv;
}

let db: TestDatabase;
let stack: TestStack;
let image = '';
let workdir = '';
let workers: LiveWorker[] = [];
const killed: LiveWorker[] = [];
const extras: LiveWorker[] = [];
let suffix = 'a'.charCodeAt(0);
let receiver: http.Server;
let receiverUrl = '';
const deliveries = new Map<string, { body: string; headers: http.IncomingHttpHeaders }[]>();

before(async () => {
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  stack = await startStack({ prefix, databaseUrl: db.url, env: { HEARTH_STEM_CELLS: '0', ...LOCKS } });
  workers = [{ app: stack.worker, home: stack.home, env: stack.env }];
  ({ image, workdir } = await deployFixture(stack, 'jobs', fnName));
  receiver = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const list = deliveries.get(req.url!) ?? [];
    list.push({ body: Buffer.concat(chunks).toString('utf8'), headers: req.headers });
    deliveries.set(req.url!, list);
    res.writeHead(200).end();
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});

after(async () => {
  if (process.env.HEARTH_TEST_DEBUG) for (const w of [...workers, ...killed]) console.log(w.home, w.app.output());
  await Promise.all(extras.map((w) => w.app.stop()));
  await stack?.stopApps();
  // A worker started with a killed one's env removes what it left (containers, mounts).
  for (const w of killed) await cleanupKilledWorker(w.env);
  receiver?.close();
  if (image) await deleteImage(image);
  await db?.drop();
  await deleteRedisPrefix(prefix);
  if (stack) {
    const left = await containers(prefix);
    for (const w of [stack.home, ...extras.map((e) => e.home)]) await fs.rm(w, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no container of the test is left');
  }
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

/** Starts workers until two live ones serve the stack. */
async function twoLiveWorkers(): Promise<void> {
  while (workers.length < 2) {
    suffix += 1;
    const extra = await startExtraWorker(stack, String.fromCharCode(suffix), LOCKS);
    const w = { app: extra.worker, home: extra.home, env: extra.env };
    extras.push(w);
    workers.push(w);
  }
}

const homes = () => [...workers, ...killed].map((w) => w.home);
const runsOf = async (key: string): Promise<RunLine[]> => (await readRuns(homes(), fnName)).filter((r) => r.key === key);

/** Waits for the run of `key` to start, SIGKILLs the worker running it; returns the victim. */
async function killRunnerOf(key: string): Promise<LiveWorker> {
  const run = await waitFor(`the run of ${key} to start`, async () => (await runsOf(key))[0], 30_000, 50);
  const victim = workers.find((w) => w.home === run.home);
  assert.ok(victim, `the run of ${key} is on a live worker`);
  victim.app.child.kill('SIGKILL');
  await once(victim.app.child, 'exit').catch(() => undefined);
  workers = workers.filter((w) => w !== victim);
  killed.push(victim);
  return victim;
}

/** The caller's side of a sync call whose worker died: an answer in time, the function's or a clear 5xx JSON error. */
async function assertAnsweredInTime(a: Answer, key: string, victim: LiveWorker, t: { diagnostic(msg: string): void }): Promise<void> {
  assert.notEqual(a.status, 0, `the caller got no answer within the deadline + 10 s: ${show(a)}`);
  assert.ok(a.ms <= DEADLINE_MS + 5000, `answered after ${a.ms} ms, past the ${DEADLINE_MS} ms deadline`);
  t.diagnostic(`answer after the kill: ${show(a)}`);
  if (a.status === 200) {
    assert.equal(a.json.path, '/');
    const runs = await runsOf(key);
    assert.equal(runs.length, 2, `started on the killed worker, run again on the live one: ${JSON.stringify(runs)}`);
    assert.ok(runs.some((r) => r.home !== victim.home), 'a live worker ran it');
    return;
  }
  assert.ok(a.status >= 500 && a.status < 600, `a 5xx: ${show(a)}`);
  assert.equal(typeof a.json?.error, 'string', `a JSON error: ${show(a)}`);
  // "did not answer within N ms" alone leaves the caller guessing; the worker running the call died.
  assert.match(a.json.error, /worker/i, `the error names what happened (the worker running the call died): ${show(a)}`);
}

test('a sync call from the shared queue whose worker is SIGKILLed: answered by the other worker, or a clear 5xx, before the deadline', async (t) => {
  await twoLiveWorkers();
  const key = 'sync-shared';
  const pending = request(`${stack.gatewayUrl}/function/${fnName}/?sleepMs=3000&key=${key}`, {}, DEADLINE_MS + 10_000);
  const victim = await killRunnerOf(key);
  await assertAnsweredInTime(await pending, key, victim, t);
});

test("a sync call routed to a worker's own queue (it held the warm instance) whose worker is SIGKILLed: answered, or a clear 5xx, before the deadline", async (t) => {
  // The one live worker gets the warm instance; the second one starts after, with none.
  assert.equal(workers.length, 1);
  const warm = await request(`${stack.gatewayUrl}/function/${fnName}/?key=warm-up`);
  assert.equal(warm.status, 200, show(warm));
  await twoLiveWorkers();
  // Routing reads the workers' status at most 0.5 s old.
  await sleep(1000);
  const key = 'sync-routed';
  const pending = request(`${stack.gatewayUrl}/function/${fnName}/?sleepMs=3000&key=${key}`, {}, DEADLINE_MS + 10_000);
  const victim = await killRunnerOf(key);
  assert.ok((await readRuns([victim.home], fnName)).some((r) => r.key === 'warm-up'), 'the call went to the worker that held the warm instance');
  await assertAnsweredInTime(await pending, key, victim, t);
});

test('an async call in flight when its worker is SIGKILLed runs again on the other worker and completes once: succeeded, one callback', async () => {
  await twoLiveWorkers();
  const key = 'async-killed';
  const res = await request(`${stack.gatewayUrl}/async-function/${fnName}/?sleepMs=3000&key=${key}`, {
    method: 'POST',
    body: '{"order":1}',
    headers: { 'content-type': 'application/json', 'x-callback-url': `${receiverUrl}/cb` },
  });
  assert.equal(res.status, 202, show(res));
  const callId = res.callId!;
  const victim = await killRunnerOf(key);

  const call = await waitFor(`call ${callId} to succeed`, async () => {
    const c = await request(`${stack.gatewayUrl}/calls/${encodeURIComponent(callId)}`, { headers: stack.authHeaders });
    return c.json?.status === 'succeeded' ? c.json : undefined;
  }, 60_000, 200);
  assert.equal(call.httpStatus, 200);
  assert.deepEqual(JSON.parse(call.result.body).received, { order: 1 });

  const delivered = await waitFor('the callback', () => deliveries.get('/cb'), 20_000);
  await sleep(2000);
  assert.equal(delivered.length, 1, 'the result is delivered once');
  assert.equal(delivered[0]!.headers['x-call-id'], callId);
  const runs = await runsOf(key);
  assert.equal(runs.length, 2, `started on the killed worker, run again (to completion) on the live one: ${JSON.stringify(runs)}`);
  assert.ok(runs.some((r) => r.home !== victim.home));
});
