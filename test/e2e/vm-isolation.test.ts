import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupVmInstances } from '@hearth/runtime';
import { fetchVmKernel } from '../../infra/images/vm-kernel.ts';
import { complete, spansByName, startTracedEcho, type TracedEcho, type TraceJson } from './traces-fixture.ts';

// `npm test` fetches the kernel into its home and says where in HEARTH_VM_HOME; run alone, the test cache holds it.
const vmHome = process.env.HEARTH_VM_HOME || '/tmp/hearth-test-cache';
let echo: TracedEcho;

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
});
