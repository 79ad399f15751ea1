/**
 * The runc driver against real runc (as root): the shared sandbox suite, plus what only a
 * container has: the overlay rootfs, runc's container list, crash cleanup.
 * Run: cd /work/main && node --import tsx --test test/runtime/runc-sandbox.test.ts
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createRuncSandbox, cleanupInstances, type RuncSandbox, type Sandbox, type SandboxOptions } from '@hearth/runtime';
import { sandboxSuite } from './sandbox.suite.ts';
import { baseRootfs, functionImageConfig, functionLayer, leftovers, mountsMentioning, runcIds, scratchHome, testPrefix } from './fixtures.ts';

sandboxSuite({
  name: 'runc',
  create: (ctx) => createRuncSandbox(ctx),
  leftovers,
  cleanup: cleanupInstances,
});

describe('runc driver', () => {
  let home: string;
  let prefix: string;
  let base: string;
  let fn: string;
  const sandboxes: Sandbox[] = [];

  const options = (id: string, over: Partial<SandboxOptions> = {}): SandboxOptions => ({
    home,
    id,
    layers: [base, fn],
    imageConfig: functionImageConfig('node', 'index.js'),
    limits: { memoryMb: 96, cpu: 0.5, pids: 64 },
    logPath: path.join(home, 'logs', `${id}.log`),
    ...over,
  });

  before(async () => {
    home = await scratchHome();
    prefix = testPrefix();
    base = await baseRootfs('node');
    fn = await functionLayer(home, 'fn', { 'index.js': 'export default () => "layer top";\n' });
  });

  after(async () => {
    await Promise.allSettled(sandboxes.map((s) => s.stop()));
    await cleanupInstances(home, prefix);
    await fs.rm(home, { recursive: true, force: true });
  });

  test('the rootfs is an overlay of the layers, top layer first; limits land in the cgroups', async () => {
    const id = `${prefix}ovl`;
    const sandbox = createRuncSandbox(options(id));
    sandboxes.push(sandbox);
    await sandbox.start();
    const mount = mountsMentioning(path.join(home, 'instances', id, 'bundle', 'rootfs'));
    assert.equal(mount.length, 1);
    assert.match(mount[0]!, new RegExp(`lowerdir=${fn}:${base}`));
    assert.equal((await fs.readFile(`/sys/fs/cgroup/memory/hearth/${id}/memory.limit_in_bytes`, 'utf8')).trim(), String(96 << 20));
    assert.equal((await fs.readFile(`/sys/fs/cgroup/cpu/hearth/${id}/cpu.cfs_quota_us`, 'utf8')).trim(), '50000');
    assert.equal((await fs.readFile(`/sys/fs/cgroup/pids/hearth/${id}/pids.max`, 'utf8')).trim(), '64');
    assert.ok(runcIds().includes(id));
    await sandbox.stop();
    assert.deepEqual(await leftovers(home, id), []);
  });

  test('many layers: the lowerdir option past one page is mounted through short links', async () => {
    // 40 layers with long names make the lowerdir option longer than the kernel's 4 KB page
    const many: string[] = [];
    for (let i = 0; i < 40; i++) {
      const dir = path.join(home, 'layers', `${'l'.repeat(90)}-${i}`);
      await fs.mkdir(path.join(dir, 'function'), { recursive: true });
      await fs.writeFile(path.join(dir, 'function', 'index.js'), `export default () => "layer ${i}";\n`);
      many.push(dir);
    }
    assert.ok(many.join(':').length > 4096);
    const id = `${prefix}many`;
    const sandbox = createRuncSandbox(options(id, { layers: [base, ...many] }));
    sandboxes.push(sandbox);
    await sandbox.start();
    const res = await sandbox.invoke({ method: 'GET', path: '/', query: '', headers: {}, body: Buffer.alloc(0) }, { timeoutMs: 5000 });
    assert.equal(res.body.toString(), 'layer 39'); // the top layer wins
    await sandbox.stop();
    assert.deepEqual(await leftovers(home, id), []);
  });

  test('start time (start() until the socket accepts), node base image', async (t) => {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const sandbox = createRuncSandbox(options(`${prefix}time-${i}`));
      sandboxes.push(sandbox);
      const t0 = performance.now();
      await sandbox.start();
      times.push(performance.now() - t0);
      t.diagnostic(`run ${i}: ${times.at(-1)!.toFixed(0)} ms ${JSON.stringify((sandbox as RuncSandbox).startTimings)}`);
      await sandbox.stop();
    }
    t.diagnostic(`start to ready: min ${Math.min(...times).toFixed(0)} ms, max ${Math.max(...times).toFixed(0)} ms`);
  });

  test('cleanupInstances removes what a crashed worker left: running containers, mounts, folders', async () => {
    const running = `${prefix}crash-1`;
    await createRuncSandbox(options(running)).start(); // never stopped: the "worker" died
    // an instance that crashed between mounting and runc run
    const orphan = `${prefix}crash-2`;
    const dir = path.join(home, 'instances', orphan);
    for (const d of ['upper', 'work', 'bundle/rootfs']) await fs.mkdir(path.join(dir, d), { recursive: true });
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${base},upperdir=${dir}/upper,workdir=${dir}/work`, `${dir}/bundle/rootfs`]);
    // someone else's container with another prefix is left alone
    const other = `${prefix.replace('test-rt-', 'test-rx-')}keep`;
    const keep = createRuncSandbox(options(other));
    sandboxes.push(keep);
    await keep.start();

    assert.ok(runcIds().includes(running));
    const removed = await cleanupInstances(home, prefix);
    assert.deepEqual(removed.sort(), [running, orphan].sort());
    assert.deepEqual(await leftovers(home, running), []);
    assert.deepEqual(await leftovers(home, orphan), []);
    assert.ok(runcIds().includes(other));
    await keep.stop();
    assert.deepEqual(await leftovers(home, other), []);
  });
});
