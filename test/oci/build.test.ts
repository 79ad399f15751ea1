import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, lstat, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { isHearthError } from '@hearth/core';
import { MEDIA_TYPES, buildFunctionImage, ensureLayersUnpacked, openContentStore, pullImage, pushRootfsImage, type ProgressEvent } from '@hearth/oci';
import { makeRootfs } from './fixtures.ts';
import { Pushed, REGISTRY, newClient, tempDir, testNamespace } from './helpers.ts';

const run = promisify(execFile);
const client = newClient();
const ns = testNamespace();
const pushed = new Pushed(client);
let work: string;
let base: { reference: string; digest: string };
const baseRef = `${REGISTRY}/${ns}/base:latest`;

before(async () => {
  work = await tempDir('build');
  pushed.dirs.push(work);
  await makeRootfs(path.join(work, 'rootfs'));
  base = await pushRootfsImage({
    client,
    target: baseRef,
    rootfsDir: path.join(work, 'rootfs'),
    config: { env: ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8'], cmd: ['/bin/tool'], workingDir: '/', labels: { 'dev.hearth.base': 'test' } },
  });
  pushed.manifests.push({ repo: `${ns}/base`, digest: base.digest });
  const fn = path.join(work, 'fn');
  await mkdir(path.join(fn, 'lib'), { recursive: true });
  await writeFile(path.join(fn, 'index.js'), 'export default () => "hi";\n');
  await writeFile(path.join(fn, 'lib', 'util.js'), 'export const x = 1;\n');
  await writeFile(path.join(fn, 'run.sh'), '#!/bin/sh\n');
  await chmod(path.join(fn, 'run.sh'), 0o755);
});
after(() => pushed.cleanup());

async function skopeoInspect(ref: string): Promise<{ Digest: string; Layers: string[]; Env: string[]; Labels: Record<string, string> | null }> {
  const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`]);
  return JSON.parse(stdout);
}

test('buildFunctionImage: base layers mounted, code layer added, config changed; skopeo and umoci read it', async () => {
  const target = `${REGISTRY}/${ns}/fn/hello:v1`;
  const events: ProgressEvent[] = [];
  const built = await buildFunctionImage({
    client,
    base: baseRef,
    target,
    files: { dir: path.join(work, 'fn'), prefix: 'function' },
    config: { env: { LANG: 'en_US.UTF-8', HEARTH_HANDLER: '/function/index.js' }, labels: { 'dev.hearth.function': 'hello' }, cmd: ['/bin/tool', 'serve'] },
    onProgress: (e) => events.push(e),
  });
  pushed.manifests.push({ repo: `${ns}/fn/hello`, digest: built.digest });
  assert.match(built.reference, new RegExp(`^${target.replace(/[.]/g, '\\.')}@sha256:[a-f0-9]{64}$`));
  assert.equal(built.reference.split('@')[1], built.digest);

  const baseManifest = await client.getManifest(`${ns}/base`, base.digest);
  const baseLayer = baseManifest.manifest.layers[0].digest as string;
  // The base layer was mounted: it reports done at once, it is in the target repository.
  assert.deepEqual(events.filter((e) => e.digest === baseLayer).map((e) => e.done), [baseManifest.manifest.layers[0].size]);
  assert.ok((await client.hasBlob(`${ns}/fn/hello`, baseLayer)) !== undefined);

  const info = await skopeoInspect(target);
  assert.equal(info.Digest, built.digest);
  assert.equal(info.Layers.length, 2);
  assert.equal(info.Layers[0], baseLayer);
  assert.deepEqual(info.Env, ['PATH=/usr/bin:/bin', 'LANG=en_US.UTF-8', 'HEARTH_HANDLER=/function/index.js']);
  assert.deepEqual(info.Labels, { 'dev.hearth.base': 'test', 'dev.hearth.function': 'hello' });

  const manifest = await client.getManifest(`${ns}/fn/hello`, 'v1');
  assert.equal(manifest.mediaType, MEDIA_TYPES.ociManifest);
  assert.equal(manifest.manifest.config.mediaType, MEDIA_TYPES.ociConfig);

  // Pull it back and look at the code layer as a runtime would.
  const home = path.join(work, 'home');
  const store = openContentStore(path.join(home, 'content'));
  const image = await pullImage({ store, client, ref: target });
  assert.deepEqual(image.config.config?.Cmd, ['/bin/tool', 'serve']);
  const dirs = await ensureLayersUnpacked({ home, store, image });
  const code = dirs[1]!;
  assert.deepEqual(await readdir(code), ['function']);
  assert.deepEqual((await readdir(path.join(code, 'function'))).sort(), ['index.js', 'lib', 'run.sh']);
  const index = await lstat(path.join(code, 'function', 'index.js'));
  assert.deepEqual([index.uid, index.gid, index.mtimeMs], [0, 0, 0]);
  assert.equal((await lstat(path.join(code, 'function', 'run.sh'))).mode & 0o777, 0o755);

  // A real OCI tool chain agrees: skopeo copies it to an OCI layout, umoci unpacks it.
  const layout = path.join(work, 'layout');
  await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${target}`, `oci:${layout}:v1`]);
  const bundle = path.join(work, 'bundle');
  await run('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
  const rootfs = path.join(bundle, 'rootfs');
  assert.equal(await readFile(path.join(rootfs, 'function', 'index.js'), 'utf8'), 'export default () => "hi";\n');
  assert.equal(await readFile(path.join(rootfs, 'etc', 'app', 'config'), 'utf8'), 'owned by 1000:1001\n');
  const cfg = await lstat(path.join(rootfs, 'etc', 'app', 'config'));
  assert.deepEqual([cfg.uid, cfg.gid], [1000, 1001]);
  assert.equal((await lstat(path.join(rootfs, 'bin', 'tool'))).mode & 0o7777, 0o4755);
  const bundleConfig = JSON.parse(await readFile(path.join(bundle, 'config.json'), 'utf8'));
  assert.deepEqual(bundleConfig.process.args, ['/bin/tool', 'serve']);
});

test('builds are reproducible: same inputs, same digest; entrypoint without cmd clears cmd', async () => {
  const opts = {
    client,
    base: baseRef,
    files: { dir: path.join(work, 'fn'), prefix: 'function' },
    config: { entrypoint: ['/bin/sh', '-c'], env: { A: '1' } },
  };
  const one = await buildFunctionImage({ ...opts, target: `${REGISTRY}/${ns}/fn/repro:a` });
  pushed.manifests.push({ repo: `${ns}/fn/repro`, digest: one.digest });
  // Touch the files: mtimes must not matter.
  const now = new Date();
  const { utimes } = await import('node:fs/promises');
  await utimes(path.join(work, 'fn', 'index.js'), now, now);
  const two = await buildFunctionImage({ ...opts, target: `${REGISTRY}/${ns}/fn/repro:b` });
  assert.equal(two.digest, one.digest);
  const config = (await pullImage({ store: openContentStore(path.join(work, 'home-repro', 'content')), client, ref: `${REGISTRY}/${ns}/fn/repro:a` })).config;
  assert.deepEqual(config.config?.Entrypoint, ['/bin/sh', '-c']);
  assert.equal(config.config?.Cmd, undefined);

  // The same rootfs pushed twice gives the same digest too.
  const again = await pushRootfsImage({
    client,
    target: `${REGISTRY}/${ns}/base:again`,
    rootfsDir: path.join(work, 'rootfs'),
    config: { env: ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8'], cmd: ['/bin/tool'], workingDir: '/', labels: { 'dev.hearth.base': 'test' } },
  });
  assert.equal(again.digest, base.digest);
});

test('pushRootfsImage output passes skopeo inspect; a missing base is NOT_FOUND', async () => {
  const info = await skopeoInspect(baseRef);
  assert.equal(info.Digest, base.digest);
  assert.equal(info.Layers.length, 1);
  await assert.rejects(
    buildFunctionImage({ client, base: `${REGISTRY}/${ns}/nope:latest`, target: `${REGISTRY}/${ns}/fn/x:1`, files: { dir: path.join(work, 'fn'), prefix: 'function' }, config: {} }),
    (err) => isHearthError(err, 'NOT_FOUND') && err.message.includes(`${ns}/nope:latest`),
  );
});
