/**
 * Stem cells: a node instance of the base image started with no function, then specialized
 * into one. Function images are built with buildFunctionImage on hearth/node:latest, pushed
 * to the dev registry under this test's prefix, pulled and unpacked as the worker does.
 * Needs root, runc and the registry. Run: cd /work/main && node --import tsx --test test/runtime/stem-cell.test.ts
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { buildFunctionImage, RegistryClient } from '@hearth/oci';
import { cleanupInstances, stemCellLayers, type RuncSandbox, type SandboxOptions } from '@hearth/runtime';
import { COPY_LIMITS, planFunctionCode } from '../../packages/runtime/src/stem-cell.ts';
import { cleanupRegistry, testEnv, uniquePrefix } from '../helpers/services.ts';
import {
  codeLayer, get, leftovers, leftoversWithPrefix, mountsMentioning, post, prefixedHome, pullBase, pullUnpacked, rejectsWith, trackedSandbox, type PulledBase,
} from './fixtures.ts';

// No package.json of its own: `export default` works because the base's /function/package.json shows through.
const FUNCTION_A = `
import fs from 'node:fs';
export default async (request, ctx) => {
  const url = new URL(request.url);
  if (url.pathname === '/write') {
    try { fs.writeFileSync('/function/index.js', 'overwritten'); return 'written'; } catch (err) { return err.code; }
  }
  return { from: 'function A', greeting: process.env.GREETING, name: ctx.functionName, files: fs.readdirSync('/function').sort(), cwd: process.cwd() };
};
`;

const { registry } = testEnv();
let home: string;
let prefix: string;
let base: PulledBase;
/** Function A's image, pulled: base layers + its code layer. */
let imageA: PulledBase;
const pushed: string[] = [];
let n = 0;
const sandboxes: RuncSandbox[] = [];

function stemCell(over: Partial<SandboxOptions> = {}): RuncSandbox {
  return trackedSandbox(sandboxes, {
    home,
    id: `${prefix}-${++n}`,
    layers: base.layers,
    imageConfig: base.imageConfig,
    limits: { memoryMb: 128, cpu: 1 },
    stemCell: true,
    ...over,
  });
}

/** env of a function image (its config Env, as the worker would pass it) plus `extra`. */
function imageEnv(image: PulledBase, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of image.imageConfig.Env ?? []) env[entry.slice(0, entry.indexOf('='))] = entry.slice(entry.indexOf('=') + 1);
  return { ...env, ...extra };
}

/** The function layers of `image` that a stem cell of `base` needs, as unpacked dirs. */
function extraLayers(image: PulledBase): string[] {
  const extra = stemCellLayers(base.diffIds, image.diffIds);
  assert.ok(extra, 'the function image is built on the base image');
  return extra.map((d) => image.layers[image.diffIds.indexOf(d)]!);
}

before(async () => {
  prefix = uniquePrefix('rt-stem');
  home = await prefixedHome(prefix);
  base = await pullBase(home, 'node');
  const src = path.join(home, 'src-a');
  await fs.mkdir(src, { recursive: true });
  await fs.writeFile(path.join(src, 'index.js'), FUNCTION_A);
  const client = new RegistryClient({ registry, insecure: true });
  const built = await buildFunctionImage({
    client,
    base: `${registry}/hearth/node@${base.digest}`, // the very image the stem cells run
    target: `${registry}/${prefix}/fn-a:1`,
    files: { dir: src, prefix: 'function' },
    config: { env: { HEARTH_HANDLER: '/function/index.js' } },
  });
  pushed.push(built.reference);
  imageA = await pullUnpacked(home, built.reference);
});

after(async () => {
  await Promise.allSettled(sandboxes.map((s) => s.stop()));
  await cleanupInstances(home, `${prefix}-`);
  assert.deepEqual(await leftoversWithPrefix(home, `${prefix}-`), []);
  await cleanupRegistry(prefix, pushed, registry);
  await fs.rm(home, { recursive: true, force: true });
});

test('stemCellLayers: the function layers when the base is a prefix of the image, else undefined', async () => {
  assert.deepEqual(stemCellLayers(base.diffIds, imageA.diffIds), imageA.diffIds.slice(base.diffIds.length));
  assert.equal(imageA.diffIds.length, base.diffIds.length + 1);
  assert.deepEqual(stemCellLayers(['sha256:a', 'sha256:b'], ['sha256:a', 'sha256:b']), []);
  assert.equal(stemCellLayers(['sha256:a', 'sha256:b'], ['sha256:a', 'sha256:c', 'sha256:d']), undefined);
  assert.equal(stemCellLayers(['sha256:a', 'sha256:b'], ['sha256:a']), undefined);
  const exec = await pullBase(home, 'exec');
  assert.equal(stemCellLayers(exec.diffIds, imageA.diffIds), undefined);
});

test('a stem cell answers 503 before specialization, then serves the function it was specialized into', async (t) => {
  const s = stemCell();
  await s.start();
  const early = await s.invoke(get('/'), { timeoutMs: 5000 });
  assert.equal(early.status, 503);
  assert.match(JSON.parse(early.body.toString()).error, /not specialized/);

  const timing = await s.specialize({
    functionLayers: extraLayers(imageA),
    env: imageEnv(imageA, { GREETING: 'hello from specialize', HEARTH_FUNCTION: 'fn-a' }),
  });
  t.diagnostic(`specialize: mount ${timing.mountMs.toFixed(1)} ms, load ${timing.loadMs.toFixed(1)} ms`);
  assert.equal(s.specialized, true);
  const res = await s.invoke(get('/'), { timeoutMs: 5000 });
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body.toString()), {
    from: 'function A',
    greeting: 'hello from specialize',
    name: 'fn-a',
    files: ['index.js', 'package.json'], // package.json from the base image
    cwd: '/function',
  });
  // the function's code is read-only inside
  assert.equal((await s.invoke(get('/write'), { timeoutMs: 5000 })).body.toString(), 'EROFS');

  const again = await rejectsWith(s.specialize({ functionLayers: extraLayers(imageA), env: imageEnv(imageA) }), 'CONFLICT');
  assert.match(again.message, /already specialized/);
  assert.equal((await s.invoke(get('/'), { timeoutMs: 5000 })).status, 200, 'still serves after the refused second specialize');

  assert.ok(mountsMentioning(path.join(s.dir, 'function')).length >= 2, 'the shared bind and the function overlay');
  await s.stop();
  assert.deepEqual(await leftovers(home, s.id), []);
  assert.deepEqual(mountsMentioning(home), []);
});

// What `hearth init` makes: the function's own package.json replaces the base's.
const FUNCTION_TEMPLATE = `
import fs from 'node:fs';
let calls = 0;
export default async (request) => {
  calls++;
  const url = new URL(request.url);
  const attempt = (what, fn) => { try { fn(); return 'done'; } catch (err) { return err.code; } };
  if (url.pathname === '/write') {
    return {
      overwrite: attempt('overwrite', () => fs.writeFileSync('/function/index.js', 'x')),
      create: attempt('create', () => fs.writeFileSync('/function/new.js', 'x')),
      remove: attempt('remove', () => fs.unlinkSync('/function/lib/util.js')),
      chmod: attempt('chmod', () => fs.chmodSync('/function/index.js', 0o777)),
    };
  }
  const { hello } = await import('./lib/util.js');
  return {
    calls,
    hello: hello(await request.text()),
    files: fs.readdirSync('/function').sort(),
    pkg: JSON.parse(fs.readFileSync('/function/package.json', 'utf8')).name,
    link: fs.readlinkSync('/function/current'),
    secret: fs.readFileSync('/function/nobody-only.txt', 'utf8'),
    runMode: (fs.statSync('/function/run.sh').mode & 0o777).toString(8),
  };
};
`;

/** The template-shaped code layer: index.js, package.json, a folder, a symlink, a 0755 script and a 0600 file of nobody's. */
async function templateLayer(name: string): Promise<string> {
  const layer = await codeLayer(home, name, {
    'index.js': FUNCTION_TEMPLATE,
    'package.json': JSON.stringify({ name: 'from-the-function', type: 'module' }),
    'lib/util.js': 'export const hello = (name) => `Hello, ${name}!`;\n',
    'run.sh': { text: '#!/bin/sh\necho hi\n', mode: 0o755 },
    'nobody-only.txt': { text: 'for nobody', mode: 0o600 },
  });
  await fs.chown(path.join(layer, 'function', 'nobody-only.txt'), 65534, 65534);
  await fs.symlink('lib/util.js', path.join(layer, 'function', 'current'));
  return layer;
}

test('a function whose own folder replaces the base\'s (one layer, as hearth init makes it): its files as they are, read-only, and its first call is its first', async () => {
  const layer = await templateLayer('template');
  const s = stemCell();
  await s.start();
  await s.specialize({ functionLayers: [layer], env: { HEARTH_HANDLER: '/function/index.js' }, limits: { memoryMb: 128, cpu: 0.5 } });
  const res = await s.invoke(post('/', 'world'), { timeoutMs: 5000 });
  assert.equal(res.status, 200, res.body.toString());
  assert.deepEqual(JSON.parse(res.body.toString()), {
    calls: 1, // nothing called the handler before (the stem cell's warm-up has its own)
    hello: 'Hello, world!',
    files: ['current', 'index.js', 'lib', 'nobody-only.txt', 'package.json', 'run.sh'],
    pkg: 'from-the-function',
    link: 'lib/util.js',
    secret: 'for nobody',
    runMode: '755',
  });
  const write = await s.invoke(get('/write'), { timeoutMs: 5000 });
  assert.deepEqual(JSON.parse(write.body.toString()), { overwrite: 'EROFS', create: 'EROFS', remove: 'EROFS', chmod: 'EROFS' });
  // the layer itself is untouched
  assert.equal(await fs.readFile(path.join(layer, 'function', 'index.js'), 'utf8'), FUNCTION_TEMPLATE);
  await s.stop();
  assert.deepEqual(await leftovers(home, s.id), []);
  assert.equal((await fs.readdir(path.join(layer, 'function'))).length, 6, 'the layer keeps its files after the instance is gone');
});

test('a function of two layers: the overlay of both over the base\'s /function, read-only', async () => {
  const lower = await codeLayer(home, 'two-lower', {
    'index.js': 'export default () => "old";\n',
    'lib.js': 'export const label = "from the lower layer";\n',
  });
  const upper = await codeLayer(home, 'two-upper', {
    'index.js': `import fs from 'node:fs';
import { label } from './lib.js';
export default (request) => {
  if (new URL(request.url).pathname === '/write') { try { fs.writeFileSync('/function/lib.js', 'x'); return 'written'; } catch (err) { return err.code; } }
  return { label, files: fs.readdirSync('/function').sort() };
};
`,
  });
  const s = stemCell();
  await s.start();
  await s.specialize({ functionLayers: [lower, upper], env: { HEARTH_HANDLER: '/function/index.js' } });
  const res = await s.invoke(get('/'), { timeoutMs: 5000 });
  assert.equal(res.status, 200, res.body.toString());
  // package.json (type: module) from the base, lib.js from the lower layer, index.js from the upper
  assert.deepEqual(JSON.parse(res.body.toString()), { label: 'from the lower layer', files: ['index.js', 'lib.js', 'package.json'] });
  assert.equal((await s.invoke(get('/write'), { timeoutMs: 5000 })).body.toString(), 'EROFS');
  await s.stop();
  assert.deepEqual(await leftovers(home, s.id), []);
});

test('planFunctionCode: copies only code whose own single folder replaces every base entry and is small', async () => {
  const baseFolder = (await codeLayer(home, 'plan-base', { 'package.json': '{"type":"module"}' })) + '/function';
  const own = (name: string, files: Record<string, string>) => codeLayer(home, name, files).then((l) => `${l}/function`);
  const template = await own('plan-template', { 'index.js': 'x', 'package.json': '{}' });
  const copy = planFunctionCode([baseFolder], [template]);
  assert.equal(copy.kind, 'copy');
  assert.deepEqual(copy.kind === 'copy' ? copy.entries.map((e) => e.rel).sort() : [], ['', 'index.js', 'package.json']);
  // the base's package.json would show through
  assert.deepEqual(planFunctionCode([baseFolder], [await own('plan-nopkg', { 'index.js': 'x' })]), { kind: 'mount', folders: [baseFolder, `${home}/code/plan-nopkg/function`] });
  assert.equal((planFunctionCode([baseFolder], [template, template])).kind, 'mount');
  const baseWithFolder = (await codeLayer(home, 'plan-base-dir', { 'package.json': '{}', 'lib/a.js': 'x' })) + '/function';
  assert.equal((planFunctionCode([baseWithFolder], [await own('plan-lib', { 'package.json': '{}', 'lib/b.js': 'x' })])).kind, 'mount');
  const many = Object.fromEntries(Array.from({ length: COPY_LIMITS.entries + 1 }, (_, i) => [`m/${i}.js`, 'x']));
  assert.equal((planFunctionCode([baseFolder], [await own('plan-many', { 'package.json': '{}', ...many })])).kind, 'mount');
  assert.throws(() => planFunctionCode([], []), (err: Error & { code?: string }) => err.code === 'INVALID_ARGUMENT');
});

test('a function too large to copy is mounted, read-only', async () => {
  const files: Record<string, string> = { 'package.json': '{"type":"module"}', 'index.js': `import fs from 'node:fs';
export default (request) => {
  if (new URL(request.url).pathname === '/write') { try { fs.writeFileSync('/function/index.js', 'x'); return 'written'; } catch (err) { return err.code; } }
  return String(fs.readdirSync('/function/node_modules').length);
};
` };
  for (let i = 0; i < COPY_LIMITS.entries + 10; i++) files[`node_modules/m${i}.js`] = `export default ${i};\n`;
  const layer = await codeLayer(home, 'large', files);
  const s = stemCell();
  await s.start();
  await s.specialize({ functionLayers: [layer], env: { HEARTH_HANDLER: '/function/index.js' } });
  assert.equal((await s.invoke(get('/'), { timeoutMs: 5000 })).body.toString(), String(COPY_LIMITS.entries + 10));
  assert.equal((await s.invoke(get('/write'), { timeoutMs: 5000 })).body.toString(), 'EROFS');
  await s.stop();
  assert.deepEqual(await leftovers(home, s.id), []);
});

test('a handler that fails to load: UNAVAILABLE naming the error, and the stem cell is gone', async () => {
  const broken = await codeLayer(home, 'broken', { 'index.js': 'export default () => "x";\nthrow new Error("config file missing: /function/app.json");\n' });
  const s = stemCell();
  await s.start();
  const err = await rejectsWith(s.specialize({ functionLayers: [broken], env: { HEARTH_HANDLER: '/function/index.js' } }), 'UNAVAILABLE');
  assert.match(err.message, /^function failed to start: cannot load \/function\/index.js: Error: config file missing: \/function\/app.json/);
  assert.deepEqual(await leftovers(home, s.id), []);

  const noExport = await codeLayer(home, 'no-export', { 'index.js': 'export const x = 1;\n' });
  const s2 = stemCell();
  await s2.start();
  const err2 = await rejectsWith(s2.specialize({ functionLayers: [noExport], env: { HEARTH_HANDLER: '/function/index.js' } }), 'UNAVAILABLE');
  assert.match(err2.message, /exports no function/);
  assert.deepEqual(await leftovers(home, s2.id), []);
});

test('specialize applies new limits; a layer with files outside /function is refused before anything changes', async () => {
  const s = stemCell({ limits: { memoryMb: 256, cpu: 1 } });
  await s.start();
  const outside = path.join(home, 'code', 'outside');
  await fs.mkdir(path.join(outside, 'function'), { recursive: true });
  await fs.mkdir(path.join(outside, 'etc'), { recursive: true });
  await fs.writeFile(path.join(outside, 'function', 'index.js'), 'export default () => "x";\n');
  await fs.writeFile(path.join(outside, 'etc', 'app.conf'), 'x\n');
  const refused = await rejectsWith(s.specialize({ functionLayers: [outside], env: imageEnv(imageA) }), 'INVALID_ARGUMENT');
  assert.match(refused.message, /outside \/function \(etc\)/);

  await s.specialize({ functionLayers: extraLayers(imageA), env: imageEnv(imageA), limits: { memoryMb: 96, cpu: 0.25, pids: 32 } });
  assert.equal((await fs.readFile(`/sys/fs/cgroup/memory/hearth/${s.id}/memory.limit_in_bytes`, 'utf8')).trim(), String(96 << 20));
  assert.equal((await fs.readFile(`/sys/fs/cgroup/cpu/hearth/${s.id}/cpu.cfs_quota_us`, 'utf8')).trim(), '25000');
  assert.equal((await fs.readFile(`/sys/fs/cgroup/pids/hearth/${s.id}/pids.max`, 'utf8')).trim(), '32');
  assert.equal((await s.invoke(get('/'), { timeoutMs: 5000 })).status, 200);
  await s.stop();
  assert.deepEqual(await leftovers(home, s.id), []);
});

test('an instance that is not a stem cell cannot be specialized', async () => {
  const s = trackedSandbox(sandboxes, {
    home,
    id: `${prefix}-${++n}`,
    layers: imageA.layers,
    imageConfig: imageA.imageConfig,
    limits: { memoryMb: 128, cpu: 1 },
  });
  await s.start();
  await rejectsWith(s.specialize({ functionLayers: [], env: {} }), 'INVALID_ARGUMENT');
  assert.equal((await s.invoke(get('/'), { timeoutMs: 5000 })).status, 200);
  await s.stop();
});

test('measured: cold start to ready vs specialize() of a started stem cell (printed, not asserted)', async (t) => {
  const cold: number[] = [];
  const warm: number[] = [];
  for (let i = 0; i < 4; i++) {
    const c = trackedSandbox(sandboxes, { home, id: `${prefix}-${++n}`, layers: imageA.layers, imageConfig: imageA.imageConfig, limits: { memoryMb: 128, cpu: 1 } });
    let t0 = performance.now();
    await c.start();
    cold.push(performance.now() - t0);
    await c.stop();

    const s = stemCell();
    await s.start();
    t0 = performance.now();
    const parts = await s.specialize({ functionLayers: extraLayers(imageA), env: imageEnv(imageA) });
    warm.push(performance.now() - t0);
    t.diagnostic(`run ${i}: cold ${cold.at(-1)!.toFixed(0)} ms; specialize ${warm.at(-1)!.toFixed(1)} ms (mount ${parts.mountMs.toFixed(1)}, load ${parts.loadMs.toFixed(1)})`);
    assert.equal((await s.invoke(get('/'), { timeoutMs: 5000 })).status, 200);
    await s.stop();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  t.diagnostic(`median: cold start ${median(cold).toFixed(0)} ms, specialize ${median(warm).toFixed(1)} ms`);
});
