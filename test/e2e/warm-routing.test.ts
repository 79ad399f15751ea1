import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cleanupInstances } from '@hearth/runtime';
import { createTestDatabase, testEnv, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { REPO_ROOT, runCli, startApp, startStack, type AppProcess, type TestStack } from '../helpers/stack.ts';

const prefix = uniquePrefix('route');
const fnName = `${prefix}-fn`;

let db: TestDatabase;
let stack: TestStack;
let second: AppProcess;
let workdir: string;

// No stem cells: every start is cold, so which worker served a call shows in its instance.
const ENV = { HEARTH_STEM_CELLS: '0' };

before(async () => {
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  stack = await startStack({ prefix, databaseUrl: db.url, env: { ...ENV, HEARTH_WORKER_ID: `${prefix}-a` } });
  // Its own instance prefix: a worker cleans up, at start, whatever its prefix left.
  second = await startApp('worker', { ...stack.env, HEARTH_WORKER_ID: `${prefix}-b`, HEARTH_INSTANCE_PREFIX: `${prefix}-b-` }, /worker ready/);
  workdir = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-src-`));
  const dir = path.join(workdir, fnName);
  await fs.cp(path.join(REPO_ROOT, 'test/fixtures/functions/pool'), dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'hearth.yaml'), `name: ${fnName}\nruntime: node\nhandler: index.js\nmemoryMb: 96\ntimeoutMs: 5000\n`);
  const res = await runCli(['deploy', fnName], { cwd: workdir, env: { ...stack.env, HEARTH_REGISTRY: testEnv().registry } });
  assert.equal(res.code, 0, res.stderr);
});

after(async () => {
  if (process.env.HEARTH_TEST_DEBUG) console.log(stack?.worker.output(), second?.output());
  await second?.stop();
  await stack?.stopApps();
  // The worker killed on purpose left its containers; this is what its restart would remove.
  await cleanupInstances(stack.home, `${prefix}-`);
  await db?.drop();
  if (stack) await fs.rm(stack.home, { recursive: true, force: true });
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

async function call(): Promise<{ start: string | null; instance: string | null }> {
  const res = await fetch(`${stack.gatewayUrl}/function/${fnName}`);
  assert.equal(res.status, 200, await res.clone().text());
  await res.arrayBuffer();
  return { start: res.headers.get('x-hearth-start'), instance: res.headers.get('x-hearth-instance') };
}

async function instances(): Promise<{ worker: string; id: string }[]> {
  const res = await fetch(`${stack.gatewayUrl}/system/instances?function=${fnName}`, { headers: stack.authHeaders });
  return ((await res.json()) as { instances: { worker: string; id: string }[] }).instances;
}

test('with two workers, a steady stream for one function stays on the worker that holds it warm', async () => {
  const first = await call();
  assert.equal(first.start, 'cold');
  // The gateway learns which worker holds the instance from the status it publishes.
  await new Promise((r) => setTimeout(r, 1500));
  const answers = [];
  for (let i = 0; i < 30; i++) answers.push(await call());
  const warm = answers.filter((a) => a.start === 'warm').length;
  assert.equal(warm, 30, JSON.stringify(answers));
  assert.deepEqual([...new Set(answers.map((a) => a.instance))], [first.instance]);
  const held = await instances();
  assert.equal(held.length, 1, JSON.stringify(held));
});

/** Deploys the pool fixture as `name` with `extra` lines in its hearth.yaml. */
async function deployPool(name: string, extra: string): Promise<void> {
  const dir = path.join(workdir, name);
  await fs.cp(path.join(REPO_ROOT, 'test/fixtures/functions/pool'), dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'hearth.yaml'), `name: ${name}\nruntime: node\nhandler: index.js\nmemoryMb: 96\ntimeoutMs: 8000\n${extra}\n`);
  const res = await runCli(['deploy', name], { cwd: workdir, env: { ...stack.env, HEARTH_REGISTRY: testEnv().registry } });
  assert.equal(res.code, 0, res.stderr);
}

async function instancesOf(name: string): Promise<{ worker: string; id: string }[]> {
  const res = await fetch(`${stack.gatewayUrl}/system/instances?function=${name}`, { headers: stack.authHeaders });
  return ((await res.json()) as { instances: { worker: string; id: string }[] }).instances;
}

test('maxInstances holds across workers: a burst both workers take is served by one instance, no call lost', async () => {
  const name = `${prefix}-cap`;
  await deployPool(name, 'scale: { maxInstances: 1, idleTtlSec: 60 }');
  let most = 0;
  let polling = true;
  const poll = (async () => {
    while (polling) {
      most = Math.max(most, (await instancesOf(name)).length);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  // Nobody holds the function yet: the calls go to the shared queue, and both workers take some.
  const answers = await Promise.all(
    Array.from({ length: 6 }, async () => {
      const res = await fetch(`${stack.gatewayUrl}/function/${name}?ms=200`);
      const text = await res.text();
      return { status: res.status, text, instance: res.headers.get('x-hearth-instance') };
    }),
  );
  polling = false;
  await poll;
  assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 200, 200], JSON.stringify(answers));
  assert.equal(new Set(answers.map((a) => a.instance)).size, 1, JSON.stringify(answers));
  assert.ok(most <= 1, `${most} instances ran at once`);
  assert.equal((await instancesOf(name)).length, 1);
});

test('minWarm holds across workers: one warm instance in the cluster, not one per worker', async () => {
  const name = `${prefix}-warm`;
  await deployPool(name, 'scale: { minWarm: 1, maxInstances: 5 }');
  const deadline = Date.now() + 30_000;
  while ((await instancesOf(name)).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  // Both workers got the deploy announcement; give the slower one time to act on it.
  await new Promise((r) => setTimeout(r, 2000));
  const held = await instancesOf(name);
  assert.equal(held.length, 1, JSON.stringify(held));
});

test('calls routed to a worker that was killed are served by another worker', async () => {
  const [held] = await instances();
  assert.ok(held);
  const victim = held.worker === `${prefix}-a` ? stack.worker : second;
  victim.child.kill('SIGKILL');
  await victim.stop();
  // The gateway still routes to the dead worker until its status expires; those calls wait
  // in its queue until a live worker drains it.
  const answer = await call();
  assert.ok(answer.instance && answer.instance !== held.id, JSON.stringify(answer));
  const now = await instances();
  assert.ok(now.every((i) => i.worker !== held.worker), JSON.stringify(now));
});
