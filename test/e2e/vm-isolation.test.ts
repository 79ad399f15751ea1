import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupVmInstances } from '@hearth/runtime';
import { fetchVmKernel } from '../../infra/images/vm-kernel.ts';
import { complete, spansByName, startTracedEcho, type TracedEcho, type TraceJson } from './traces-fixture.ts';

// `npm test` fetches the kernel into its home and says where in HEARTH_VM_HOME; run alone, the test cache holds it.
const vmHome = process.env.HEARTH_VM_HOME || '/tmp/hearth-test-cache';
let echo: TracedEcho;
/** The echo fixture's memoryMb (test/fixtures/functions/echo/hearth.yaml, or the default). */
const SPEC_MEMORY_MB = 128;

before(async () => {
  await fetchVmKernel({ home: vmHome });
  // Under TCG a microVM boots node in seconds to tens of seconds; a call waits up to its timeout plus a minute for its instance.
  echo = await startTracedEcho('vm', { HEARTH_VM_HOME: vmHome }, 'isolation: vm');
});

after(async () => {
  if (echo) await cleanupVmInstances(echo.stack.home, `${echo.prefix}-`);
  await echo?.cleanup();
});

test('isolation: vm serves a node function in a microVM, and its trace says vm and which accelerator', async () => {
  const res = await echo.call('/hello?x=1', { method: 'POST', body: 'from the test', headers: { 'content-type': 'text/plain' } });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.equal(res.headers.get('x-hearth-start'), 'cold');
  const seen = JSON.parse(text) as { path: string; body: string; query: Record<string, string> };
  assert.equal(seen.path, '/hello');
  assert.equal(seen.body, 'from the test');
  assert.deepEqual(seen.query, { x: '1' });

  const callId = res.headers.get('x-call-id');
  const trace: TraceJson = await echo.waitForTrace(
    (t) => complete(['gateway.invoke', 'worker.invoke', 'function.invoke'])(t) && t.spans.some((s) => s.attributes['faas.invocation_id'] === callId),
    30_000,
  );
  const s = spansByName(trace, ['worker.invoke', 'pool.acquire', 'sandbox.create', 'sandbox.start', 'sandbox.ready', 'function.invoke']);
  assert.equal(s['worker.invoke']!.attributes['hearth.isolation'], 'vm');
  assert.match(String(s['pool.acquire']!.attributes['hearth.accel']), /^(kvm|tcg)$/);

  const again = await echo.call('/', { method: 'GET' });
  await again.text();
  assert.equal(again.status, 200);
  assert.equal(again.headers.get('x-hearth-start'), 'warm');
  assert.equal(again.headers.get('x-hearth-instance'), res.headers.get('x-hearth-instance'));

  // The worker's memory budget counts the guest's whole RAM, not just the function's limit.
  type Held = { instances: { id: string; memoryMb: number }[]; workers: { memory: { usedMb: number } }[] };
  const counted = (h: Held) => (h.instances[0]?.memoryMb ?? 0) > SPEC_MEMORY_MB;
  let held = await echo.system<Held>(`/system/instances?function=${echo.fnName}`);
  // Statuses are published in coalesced batches: the started instance's may trail a moment.
  for (const deadline = Date.now() + 10_000; !counted(held) && Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 250));
    held = await echo.system<Held>(`/system/instances?function=${echo.fnName}`);
  }
  assert.equal(held.instances.length, 1, JSON.stringify(held));
  assert.ok(held.instances[0]!.memoryMb > SPEC_MEMORY_MB, `the vm instance counts ${held.instances[0]!.memoryMb} MB`);
  assert.ok(held.workers[0]!.memory.usedMb >= held.instances[0]!.memoryMb, JSON.stringify(held.workers));
});
