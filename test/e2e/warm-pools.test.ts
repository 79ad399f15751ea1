import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, testEnv, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { REPO_ROOT, runCli, startApp, startStack, type AppProcess, type TestStack } from '../helpers/stack.ts';
import { runcIds } from '../runtime/fixtures.ts';

const prefix = uniquePrefix('pool');

let db: TestDatabase;
let stack: TestStack;
let workdir: string;
/** The worker now serving calls: the stack's, until a test restarts it. */
let worker: AppProcess;

// Short timers so idle release and pausing happen within a test.
const WORKER_ENV = { HEARTH_STEM_CELLS: '1', HEARTH_PAUSE_AFTER_MS: '300', HEARTH_WORKER_MEMORY_MB: '2000' };

before(async () => {
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  stack = await startStack({ prefix, databaseUrl: db.url, env: WORKER_ENV });
  worker = stack.worker;
  workdir = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-src-`));
});

after(async () => {
  if (process.env.HEARTH_TEST_DEBUG) console.log(stack?.gateway.output(), worker?.output());
  await worker?.stop();
  await stack?.stopApps();
  await db?.drop();
  if (stack) await fs.rm(stack.home, { recursive: true, force: true });
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  start: string | null;
  instance: string | null;
  label: string | null;
}

/** Deploys the pool fixture as `<prefix>-<short>` with extra hearth.yaml lines. */
async function deploy(short: string, extra: string): Promise<string> {
  const name = `${prefix}-${short}`;
  const dir = path.join(workdir, name);
  await fs.cp(path.join(REPO_ROOT, 'test/fixtures/functions/pool'), dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'hearth.yaml'), `name: ${name}\nruntime: node\nhandler: index.js\nmemoryMb: 96\ntimeoutMs: 5000\n${extra}\n`);
  const res = await runCli(['deploy', name], { cwd: workdir, env: { ...stack.env, HEARTH_REGISTRY: testEnv().registry } });
  assert.equal(res.code, 0, res.stderr);
  return name;
}

async function call(name: string, query = ''): Promise<Answer> {
  const res = await fetch(`${stack.gatewayUrl}/function/${name}${query}`);
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return { status: res.status, start: res.headers.get('x-hearth-start'), instance: res.headers.get('x-hearth-instance'), label: (JSON.parse(text) as { label: string | null }).label };
}

interface Instance {
  id: string;
  function: string;
  version: number;
  state: string;
  start: string;
  calls: number;
  worker: string;
}

async function instances(name?: string): Promise<{ instances: Instance[]; workers: { stemCells: Record<string, { ready: number }> }[] }> {
  const res = await fetch(`${stack.gatewayUrl}/system/instances${name ? `?function=${name}` : ''}`, { headers: stack.authHeaders });
  assert.equal(res.status, 200);
  return (await res.json()) as never;
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

const stemCellReady = () => waitFor('a ready stem cell', async () => (await instances()).workers.some((w) => (w.stemCells.node?.ready ?? 0) > 0));

test('a cold call takes a stem cell and runs the function\'s own code; a specialized cell never serves another function', async () => {
  const a = await deploy('stem-a', 'env: { LABEL: A }');
  await stemCellReady();
  const first = await call(a);
  assert.equal(first.start, 'stemcell');
  assert.equal(first.label, 'A');

  const b = await deploy('stem-b', 'env: { LABEL: B }');
  await stemCellReady();
  const other = await call(b);
  assert.equal(other.start, 'stemcell');
  assert.equal(other.label, 'B');
  assert.notEqual(other.instance, first.instance);

  const again = await call(a);
  assert.equal(again.start, 'warm');
  assert.equal(again.instance, first.instance);
  assert.equal(again.label, 'A');
});

test('concurrency > 1: calls in flight share one instance', async () => {
  const name = await deploy('shared', 'concurrency: 4\nscale: { maxInstances: 4 }');
  const answers = await Promise.all(Array.from({ length: 4 }, () => call(name, '?ms=800')));
  assert.equal(new Set(answers.map((a) => a.instance)).size, 1, JSON.stringify(answers));
  assert.equal((await instances(name)).instances.length, 1);
});

test('a burst never runs more instances than maxInstances; the rest wait and succeed', async () => {
  const name = await deploy('capped', 'scale: { maxInstances: 2 }');
  let most = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      most = Math.max(most, (await instances(name)).instances.length);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const answers = await Promise.all(Array.from({ length: 6 }, () => call(name, '?ms=300')));
  watching = false;
  await watcher;
  assert.equal(answers.length, 6);
  const used = new Set(answers.map((a) => a.instance));
  assert.ok(used.size <= 2, `served by ${used.size} instances`);
  assert.ok(most <= 2, `saw ${most} instances at once`);
});

test('an idle instance is paused, and thawed by its next call', async () => {
  const name = await deploy('pausing', '');
  const first = await call(name);
  await waitFor('the instance to be paused', async () => (await instances(name)).instances.find((i) => i.state === 'paused'));
  const next = await call(name);
  assert.equal(next.start, 'warm');
  assert.equal(next.instance, first.instance);
});

test('idleTtlSec releases an idle instance; minWarm keeps instances without any call, and hearth scale changes it', async () => {
  const short = await deploy('short-lived', 'scale: { idleTtlSec: 1 }');
  await call(short);
  await waitFor('the idle instance to be released', async () => (await instances(short)).instances.length === 0, 10_000);

  const warm = await deploy('kept-warm', 'scale: { minWarm: 1, idleTtlSec: 1 }');
  await waitFor('a minWarm instance', async () => (await instances(warm)).instances.some((i) => i.state !== 'starting'));
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal((await instances(warm)).instances.length, 1, 'minWarm instance released by the idle TTL');
  assert.equal((await call(warm)).start, 'warm');

  const up = await runCli(['scale', warm, '--min', '2'], { cwd: workdir, env: stack.env });
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stdout, /minWarm 2/);
  await waitFor('two instances after scale --min 2', async () => (await instances(warm)).instances.length === 2);

  const ps = await runCli(['ps', warm], { cwd: workdir, env: stack.env });
  assert.equal(ps.code, 0, ps.stderr);
  assert.equal(ps.stdout.split('\n').filter((l) => l.includes(warm)).length, 2, ps.stdout);

  const bad = await runCli(['scale', warm, '--min', '5', '--max', '3'], { cwd: workdir, env: stack.env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /minWarm \(5\) must not be more than maxInstances \(3\)/);

  const down = await runCli(['scale', warm, '--min', '0'], { cwd: workdir, env: stack.env });
  assert.equal(down.code, 0, down.stderr);
  await waitFor('instances released after scale --min 0', async () => (await instances(warm)).instances.length === 0, 10_000);
});

test('after a redeploy returns, calls get the new version and the old version\'s instances are released', async () => {
  const name = await deploy('versions', 'env: { LABEL: v1 }');
  assert.equal((await call(name)).label, 'v1');
  await deploy('versions', 'env: { LABEL: v2 }');
  const after = await call(name);
  assert.equal(after.label, 'v2');
  await waitFor('only version 2 instances', async () => (await instances(name)).instances.every((i) => i.version === 2));
});

test('the gateway serves Prometheus metrics summed over workers', async () => {
  const res = await fetch(`${stack.gatewayUrl}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.match(text, new RegExp(`hearth_invocations_total\\{function="${prefix}-capped",status="succeeded"\\} 6`));
  assert.match(text, new RegExp(`hearth_call_starts_total\\{function="${prefix}-stem-a",start="stemcell"\\} 1`));
  assert.match(text, /faas_invoke_duration_seconds_bucket/);
  assert.match(text, /hearth_queue_wait_seconds_count/);
  assert.match(text, /hearth_instances\{/);
});

/** Replaces the worker with one started with `env` on top of the stack's. */
async function restartWorker(env: NodeJS.ProcessEnv): Promise<void> {
  assert.equal(await worker.stop(), 0);
  worker = await startApp('worker', { ...stack.env, ...env }, /worker ready/);
}

test('minWarm is honoured again after a worker restart', async () => {
  await restartWorker(WORKER_ENV);
  const name = `${prefix}-kept-warm`;
  await runCli(['scale', name, '--min', '1'], { cwd: workdir, env: stack.env });
  await waitFor('the minWarm instance after a restart', async () => (await instances(name)).instances.some((i) => i.state !== 'starting'));
});

test('when memory runs out, the least recently used idle instance is evicted', async () => {
  // Room for two 96 MB instances: the third call must evict one.
  await restartWorker({ ...WORKER_ENV, HEARTH_STEM_CELLS: '0', HEARTH_WORKER_MEMORY_MB: '200' });
  await runCli(['scale', `${prefix}-kept-warm`, '--min', '0'], { cwd: workdir, env: stack.env });
  const [one, two, three] = [`${prefix}-stem-a`, `${prefix}-stem-b`, `${prefix}-shared`];
  await waitFor('no instances', async () => (await instances()).instances.length === 0);
  await call(one!);
  await call(two!);
  await call(one!); // `two` is now the least recently used
  const third = await call(three!);
  assert.equal(third.start, 'cold');
  const held = (await instances()).instances.map((i) => i.function).sort();
  assert.deepEqual(held, [one, three].sort());
});

test('SIGTERM drains: calls in flight finish, every instance is released, the worker exits', async () => {
  const name = `${prefix}-shared`;
  await call(name);
  const inflight = Array.from({ length: 3 }, () => call(name, '?ms=1500'));
  await waitFor('calls in flight', async () => (await instances(name)).instances.some((i) => i.state === 'busy'));
  const code = await worker.stop();
  assert.equal(code, 0);
  const answers = await Promise.all(inflight);
  assert.equal(answers.length, 3);
  assert.deepEqual(runcIds().filter((id) => id.startsWith(`${prefix}-`)), []);
  worker = await startApp('worker', { ...stack.env, ...WORKER_ENV }, /worker ready/);
});
