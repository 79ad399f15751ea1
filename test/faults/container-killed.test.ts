// A function's container killed from outside the worker (`runc kill <id> KILL`, as the OOM
// killer or an operator would): the next call succeeds on a new instance, and
// /system/instances stops listing the dead one. Once while the instance is idle and running,
// once while it is paused (frozen by the cgroup freezer).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import { createTestDatabase, deleteRedisPrefix, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { startStack, type TestStack } from '../helpers/stack.ts';
import { deleteImage, sleep, waitFor } from '../helpers/triggers.ts';
import { containers, deployFixture, request, show } from './fault-kit.ts';

const exec = promisify(execFile);
const prefix = uniquePrefix('fault-ctr');
const fnName = `${prefix}-fn`;
/** Long enough to kill a running instance before it is paused, short enough to wait for a pause. */
const PAUSE_AFTER_MS = 3000;

let db: TestDatabase;
let stack: TestStack;
let image = '';
let workdir = '';

before(async () => {
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  stack = await startStack({ prefix, databaseUrl: db.url, env: { HEARTH_STEM_CELLS: '0', HEARTH_PAUSE_AFTER_MS: String(PAUSE_AFTER_MS) } });
  ({ image, workdir } = await deployFixture(stack, 'pool', fnName, { yaml: 'memoryMb: 96\ntimeoutMs: 5000\nscale: { maxInstances: 2 }\n' }));
});

after(async () => {
  if (process.env.HEARTH_TEST_DEBUG) console.log(stack?.gateway.output(), stack?.worker.output());
  await stack?.stopApps();
  if (image) await deleteImage(image);
  await db?.drop();
  await deleteRedisPrefix(prefix);
  if (stack) {
    const left = await containers(prefix);
    await fs.rm(stack.home, { recursive: true, force: true });
    assert.deepEqual(left, [], 'the worker removed every container it started, the killed ones too');
  }
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

const call = () => request(`${stack.gatewayUrl}/function/${fnName}`);

interface Listed {
  id: string;
  state: string;
}

async function listed(): Promise<Listed[]> {
  const res = await request(`${stack.gatewayUrl}/system/instances?function=${fnName}`, { headers: stack.authHeaders });
  assert.equal(res.status, 200, show(res));
  return res.json.instances as Listed[];
}

/** SIGKILL to the container's init, from outside the worker; waits until runc sees it stopped. */
async function killContainer(id: string): Promise<void> {
  await exec('runc', ['kill', id, 'KILL']);
}

/** A warm instance to kill: one call, then its id. */
async function warmInstance(): Promise<string> {
  const first = await call();
  assert.equal(first.status, 200, show(first));
  assert.ok(first.instance, 'X-Hearth-Instance names the instance');
  const again = await call();
  assert.equal(again.status, 200, show(again));
  assert.equal(again.instance, first.instance, 'the second call is warm, on the same instance');
  return first.instance;
}

async function checkRecovery(dead: string): Promise<void> {
  const next = await call();
  assert.equal(next.status, 200, `the call after the kill: ${show(next)}`);
  assert.notEqual(next.instance, dead, 'the next call is not served by the dead instance');
  assert.ok(next.instance);

  const then = await call();
  assert.equal(then.status, 200, `and the call after that: ${show(then)}`);
  assert.notEqual(then.instance, dead);

  await waitFor(
    `/system/instances to stop listing ${dead}`,
    async () => !(await listed()).some((i) => i.id === dead),
    10_000,
    200,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}; it lists ${JSON.stringify(await listed())}`);
  });
  await waitFor(`the dead container ${dead} to be deleted`, async () => !(await containers(prefix)).some((c) => c.id === dead), 10_000, 200);
}

test('an idle running instance killed from outside: the next call succeeds on a new instance and the dead one is dropped', async () => {
  const dead = await warmInstance();
  // The worker publishes its state a moment after a change.
  await waitFor(`${dead} to be listed idle`, async () => (await listed()).find((i) => i.id === dead)?.state === 'idle', 5000, 50);
  await killContainer(dead);
  await waitFor('runc to see the container stopped', async () => (await containers(prefix)).find((c) => c.id === dead)?.status === 'stopped', 5000, 50);
  await checkRecovery(dead);
});

test('a paused instance killed from outside: the next call succeeds on a new instance and the dead one is dropped', async () => {
  // Start from no instance, so the one we kill is the only one the pool could hand out.
  await waitFor('the instances of the last test to be gone or replaced', async () => (await listed()).length <= 1, 5000);
  const dead = await warmInstance();
  for (const other of (await listed()).filter((i) => i.id !== dead)) await killContainer(other.id).catch(() => undefined);
  await waitFor(`${dead} to be paused`, async () => (await listed()).find((i) => i.id === dead)?.state === 'paused', PAUSE_AFTER_MS + 10_000, 100);
  // A frozen process gets the SIGKILL when it is thawed; runc reports the container paused until then.
  await killContainer(dead);
  await sleep(200);
  await checkRecovery(dead);
});
