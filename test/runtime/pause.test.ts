/**
 * pause()/resume() of a runc sandbox: a paused instance uses no CPU even with a busy loop
 * inside, refuses calls until resumed, answers after resume, and stops cleanly while paused.
 * Needs root, runc and the registry. Run: cd /work/main && node --import tsx --test test/runtime/pause.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanupInstances, createRuncSandbox, type RuncSandbox, type SandboxOptions } from '@hearth/runtime';
import { get, leftovers, processesOf, rejectsWith } from './fixtures.ts';
import { useNodeFunction } from './node-function-kit.ts';

// /spin starts a loop that keeps the CPU busy between turns of the event loop, so calls still get answered
const HANDLER = `
let spinning = false;
function spin() {
  const end = Date.now() + 20;
  while (Date.now() < end);
  setImmediate(spin);
}
export default async (request) => {
  const url = new URL(request.url);
  if (url.pathname === '/spin') {
    if (!spinning) { spinning = true; setImmediate(spin); }
    return 'spinning';
  }
  return 'pong';
};
`;

const fn = useNodeFunction({ name: 'rt-pause', handler: HANDLER, limits: {memoryMb:128,cpu:0.5} });
/** CPU time used by the instance's cgroup so far, in ns. */
async function cpuUsage(id: string): Promise<number> {
  return Number((await fs.readFile(`/sys/fs/cgroup/cpuacct/hearth/${id}/cpuacct.usage`, 'utf8')).trim());
}

const sandbox = (over: Partial<SandboxOptions> = {}) => fn.sandbox(over);

test('a paused instance uses no CPU while a busy loop runs inside; after resume it answers', async (t) => {
  const s = sandbox();
  await s.start();
  assert.equal((await s.invoke(get('/spin'), { timeoutMs: 5000 })).body.toString(), 'spinning');
  await sleep(200);
  const busy0 = await cpuUsage(s.id);
  await sleep(300);
  assert.ok((await cpuUsage(s.id)) - busy0 > 10e6, 'the busy loop uses CPU before the pause');

  let t0 = performance.now();
  await s.pause!();
  t.diagnostic(`pause: ${(performance.now() - t0).toFixed(1)} ms`);
  assert.equal(s.paused, true);
  assert.equal((await fs.readFile(`/sys/fs/cgroup/freezer/hearth/${s.id}/freezer.state`, 'utf8')).trim(), 'FROZEN');
  const frozen0 = await cpuUsage(s.id);
  await sleep(500);
  assert.equal(await cpuUsage(s.id), frozen0, 'no CPU time while paused');

  const refused = await rejectsWith(s.invoke(get('/'), { timeoutMs: 2000 }), 'UNAVAILABLE');
  assert.match(refused.message, /paused/);
  await s.pause!(); // a second pause changes nothing

  t0 = performance.now();
  await s.resume!();
  t.diagnostic(`resume: ${(performance.now() - t0).toFixed(1)} ms`);
  assert.equal(s.paused, false);
  assert.equal((await s.invoke(get('/'), { timeoutMs: 5000 })).body.toString(), 'pong');
  const thawed0 = await cpuUsage(s.id);
  await sleep(300);
  assert.ok((await cpuUsage(s.id)) - thawed0 > 10e6, 'the busy loop runs again after resume');
  await s.stop();
  assert.deepEqual(await leftovers(fn.home, s.id), []);
});

test('stop() of a paused instance leaves no container, process, mount, cgroup or folder', async () => {
  const s = sandbox();
  await s.start();
  await s.invoke(get('/spin'), { timeoutMs: 5000 });
  await s.pause!();
  const pids = await processesOf(s.id);
  assert.ok(pids.length > 0);
  await s.stop();
  assert.equal(s.paused, false);
  assert.deepEqual(await leftovers(fn.home, s.id), []);
  assert.deepEqual(await processesOf(s.id), []);
  await rejectsWith(s.resume!(), 'UNAVAILABLE');
});

test('cleanupInstances removes a paused container left by a crashed worker', async () => {
  const s = createUntracked();
  await s.start();
  await s.pause!();
  assert.deepEqual(await cleanupInstances(fn.home, s.id), [s.id]);
  assert.deepEqual(await leftovers(fn.home, s.id), []);
  assert.deepEqual(await processesOf(s.id), []);
});

/** An instance the test "forgets" (as a killed worker would): the kit does not stop it. */
function createUntracked(): RuncSandbox {
  return createRuncSandbox(fn.options());
}
