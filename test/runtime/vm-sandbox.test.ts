/**
 * The vm driver against real qemu (`-M microvm`, TCG here: this host's KVM hangs guests):
 * a node function from the base image pulled from the dev registry
 * (127.0.0.1:5000/hearth/node:latest) plus its code as one more layer, booted as an
 * initramfs with the Debian cloud kernel that infra/images/vm-kernel.ts fetches (kept in
 * the test cache, /tmp/hearth-test-cache/vm/kernel). Then the shared sandbox suite.
 * Boots take seconds under TCG: the timeouts are generous, timings are printed only.
 * Needs root, qemu-system-x86, cpio, gcc and the registry.
 * Run: cd /work/main && node --import tsx --test test/runtime/vm-sandbox.test.ts
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { cleanupVmInstances, createVmSandbox, type VmKernel, type VmSandbox, type VmSandboxOptions } from '@hearth/runtime';
import { fetchVmKernel } from '../../infra/images/vm-kernel.ts';
import { uniquePrefix } from '../helpers/services.ts';
import { sandboxSuite } from './sandbox.suite.ts';
import { CACHE, get, isRunning, nodeCode, prefixedHome, pullBase, rejectsWith, type PulledBase } from './fixtures.ts';

const HANDLER = `
import os from 'node:os';
export default async (request) => {
  const url = new URL(request.url);
  switch (url.pathname) {
    case '/custom':
      return new Response('short and stout', { status: 418, headers: { 'x-teapot': 'yes', 'content-type': 'text/x-tea' } });
    case '/memory': return { totalMb: Math.round(os.totalmem() / 2 ** 20) };
    case '/alloc': {
      const keep = [];
      for (let i = 0; i < Number(url.searchParams.get('mb')); i++) keep.push(Buffer.alloc(1 << 20, 1));
      return { allocated: keep.length };
    }
    case '/hang': return new Promise(() => {});
    default:
      return {
        method: request.method,
        path: url.pathname,
        query: url.search,
        headers: Object.fromEntries(request.headers),
        body: await request.text(),
      };
  }
};
`;

let kernel: VmKernel;

/** qemu processes whose command line names this instance folder. */
async function qemuFor(dir: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.startsWith('qemu-system-') && cmdline.includes(`${dir}/`) && (await isRunning(Number(name)))) found.push(Number(name));
  }
  return found;
}

/** What "nothing left" means for a VM: no qemu of the instance, no instance folder. */
async function vmLeftovers(home: string, id: string): Promise<string[]> {
  const dir = path.join(home, 'instances', id);
  const found = (await qemuFor(dir)).map((pid) => `qemu pid ${pid}`);
  if (await fs.access(dir).then(() => true, () => false)) found.push(`folder instances/${id}`);
  return found;
}

before(async () => {
  kernel = await fetchVmKernel({ home: CACHE });
});

describe('vm driver', () => {
  let home: string;
  let prefix: string;
  let base: PulledBase;
  let code: string;
  let n = 0;
  const sandboxes: VmSandbox[] = [];

  const sandbox = (over: Partial<VmSandboxOptions> = {}): VmSandbox => {
    const id = `${prefix}-${++n}`;
    const s = createVmSandbox({
      home,
      id,
      layers: [...base.layers, code],
      imageConfig: base.imageConfig,
      env: { HEARTH_HANDLER: '/function/index.js', GREETING: 'hi' },
      limits: { memoryMb: 128, cpu: 1 },
      logPath: path.join(home, 'logs', `${id}.log`),
      kernel,
      ...over,
    });
    sandboxes.push(s);
    return s;
  };

  before(async () => {
    prefix = uniquePrefix('vm');
    home = await prefixedHome(prefix);
    base = await pullBase(home, 'node');
    code = await nodeCode(home, 'fn', HANDLER);
  });

  after(async () => {
    await Promise.allSettled(sandboxes.map((s) => s.stop()));
    await cleanupVmInstances(home, `${prefix}-`);
    await fs.rm(home, { recursive: true, force: true });
  });

  test('serves a node function: status, headers and body round-trip; the accelerator is reported', { timeout: 180_000 }, async (t) => {
    const s = sandbox();
    const t0 = performance.now();
    await s.start();
    t.diagnostic(`first start ${(performance.now() - t0).toFixed(0)} ms (accel ${s.accel}, ${s.vmMemoryMb} MB RAM) ${JSON.stringify(s.startTimings)}`);
    assert.ok(s.accel === 'tcg' || s.accel === 'kvm', `accel ${s.accel}`);
    assert.equal(s.kind, 'vm');
    assert.equal(s.startTimings.initramfsBuilt, true);

    const opts = { timeoutMs: 20_000 };
    const echo = await s.invoke(
      {
        method: 'PATCH',
        path: '/orders/42',
        query: 'expand=price&note=a%20b',
        headers: { 'content-type': 'application/json', 'x-tenant': 'acme' },
        body: Buffer.from('{"qty":3,"name":"crème"}'),
      },
      { ...opts, traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    );
    assert.equal(echo.status, 200, echo.body.toString());
    assert.match(echo.headers['content-type'] ?? '', /^application\/json/);
    const seen = JSON.parse(echo.body.toString());
    assert.equal(seen.method, 'PATCH');
    assert.equal(seen.path, '/orders/42');
    assert.equal(seen.query, '?expand=price&note=a%20b');
    assert.equal(seen.headers['x-tenant'], 'acme');
    assert.equal(seen.headers.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.equal(seen.body, '{"qty":3,"name":"crème"}');

    const custom = await s.invoke(get('/custom'), opts);
    assert.equal(custom.status, 418);
    assert.equal(custom.headers['x-teapot'], 'yes');
    assert.equal(custom.headers['content-type'], 'text/x-tea');
    assert.equal(custom.body.toString(), 'short and stout');

    // calls back to back and a large body go over the one port
    const big = Buffer.alloc(300_000, 'x');
    for (let i = 0; i < 5; i++) {
      const r = await s.invoke({ method: 'POST', path: `/n/${i}`, query: '', headers: { 'content-type': 'text/plain' }, body: big }, opts);
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body.toString()).body.length, big.length);
    }
    await s.stop();
    assert.deepEqual(await vmLeftovers(home, s.id), []);
  });

  test('the initramfs is cached on disk by content: a second start builds nothing', { timeout: 180_000 }, async (t) => {
    const cacheDir = path.join(home, 'vm', 'initramfs');
    const before = (await fs.readdir(cacheDir)).filter((f) => f.endsWith('.cpio'));
    assert.ok(before.length >= 1, 'the first test left its initramfs');
    assert.match(before[0]!, /^[0-9a-f]{64}\.cpio$/);
    const s = sandbox();
    const t0 = performance.now();
    await s.start();
    t.diagnostic(`cached start ${(performance.now() - t0).toFixed(0)} ms ${JSON.stringify(s.startTimings)}`);
    assert.equal(s.startTimings.initramfsBuilt, false);
    assert.deepEqual((await fs.readdir(cacheDir)).filter((f) => f.endsWith('.cpio')), before);
    assert.equal((await s.invoke(get('/x'), { timeoutMs: 20_000 })).status, 200);
    await s.stop();
  });

  test('the memory limit is the VM\'s: the guest has the limit plus its image, and passing the limit kills the instance', { timeout: 180_000 }, async () => {
    const s = sandbox({ limits: { memoryMb: 64, cpu: 1 } });
    await s.start();
    const mem = JSON.parse((await s.invoke(get('/memory'), { timeoutMs: 20_000 })).body.toString());
    // RAM = the limit (or the image, if larger) + the unpacked image + the kernel's share; the kernel reserves some
    assert.ok(mem.totalMb <= s.vmMemoryMb && mem.totalMb > s.vmMemoryMb - 64, `guest RAM ${mem.totalMb} MB, VM ${s.vmMemoryMb} MB`);
    assert.equal((await s.invoke(get('/alloc', 'mb=8'), { timeoutMs: 20_000 })).status, 200);
    const err = await rejectsWith(s.invoke(get('/alloc', 'mb=200'), { timeoutMs: 60_000 }), 'UNAVAILABLE');
    assert.match(err.message, /instance died \(out of memory: the limit is 64 MB\)/);
    await s.stop();
    assert.deepEqual(await vmLeftovers(home, s.id), []);
  });

  test('a handler that never answers gives TIMEOUT at the deadline; stop() leaves no qemu and no folder', { timeout: 180_000 }, async () => {
    const s = sandbox();
    await s.start();
    assert.equal((await qemuFor(s.dir)).length, 1, 'one qemu runs the instance');
    const t0 = performance.now();
    const err = await rejectsWith(s.invoke(get('/hang'), { timeoutMs: 1000 }), 'TIMEOUT');
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 990 && elapsed < 5000, `TIMEOUT after ${elapsed.toFixed(0)} ms`);
    assert.match(err.message, /1000 ms/);
    await s.stop();
    await s.stop(); // twice is fine
    assert.deepEqual(await vmLeftovers(home, s.id), []);
  });

  test('a handler that does not load fails start() with UNAVAILABLE and the log tail; nothing is left', { timeout: 180_000 }, async () => {
    const broken = await nodeCode(home, 'broken', 'throw new Error("cannot even load: missing CONFIG");\n');
    const s = sandbox({ layers: [...base.layers, broken] });
    const err = await rejectsWith(s.start(), 'UNAVAILABLE');
    assert.match(err.message, /^function failed to start: the function exited/);
    assert.match(err.message, /cannot even load: missing CONFIG/);
    assert.deepEqual(await vmLeftovers(home, s.id), []);
    await s.stop(); // safe after a failed start
  });
});

sandboxSuite({
  name: 'vm',
  create: (ctx) => createVmSandbox({ ...ctx, kernel }),
  leftovers: vmLeftovers,
  cleanup: cleanupVmInstances,
  // Under TCG the kernel and node take 7-20 s (more on a busy host) before the function runs.
  bootMs: 45_000,
});
