import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { isHearthError } from '@hearth/core';
import {
  MEDIA_TYPES,
  RegistryClient,
  ensureLayersUnpacked,
  openContentStore,
  parseReference,
  pullImage,
  pushRootfsImage,
  sha256Digest,
  type ProgressEvent,
} from '@hearth/oci';
import { makeRootfs } from './fixtures.ts';
import { Pushed, REGISTRY, makeTar, newClient, tempDir, testNamespace } from './helpers.ts';

const run = promisify(execFile);
const client = newClient();
const ns = testNamespace();
const pushed = new Pushed(client);
const servers: Server[] = [];
let work: string;
let image: { reference: string; digest: string };
const target = `${REGISTRY}/${ns}/base:v1`;

before(async () => {
  work = await tempDir('pull');
  pushed.dirs.push(work);
  await makeRootfs(path.join(work, 'rootfs'));
  image = await pushRootfsImage({ client, target, rootfsDir: path.join(work, 'rootfs'), config: { env: ['PATH=/bin'], cmd: ['/bin/tool'] } });
  pushed.manifests.push({ repo: `${ns}/base`, digest: image.digest });
});
after(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await pushed.cleanup();
});

test('push a rootfs image, pull it by tag and by digest; a second pull fetches no blob', async () => {
  assert.equal(image.reference, `${target}@${image.digest}`);
  const store = openContentStore(path.join(work, 'home1', 'content'));
  const events: ProgressEvent[] = [];
  const byTag = await pullImage({ store, client, ref: target, onProgress: (e) => events.push(e) });
  assert.equal(byTag.manifestDigest, image.digest);
  assert.equal(byTag.reference, target);
  assert.equal(byTag.layers.length, 1);
  assert.deepEqual(byTag.config.config?.Cmd, ['/bin/tool']);
  assert.deepEqual(byTag.config.rootfs.diff_ids, [byTag.layers[0]!.diffId]);
  assert.equal(byTag.layers[0]!.mediaType, MEDIA_TYPES.ociLayerGzip);
  // Progress for the config and the layer, each ending at its size.
  const fetched = new Set(events.map((e) => e.digest));
  assert.equal(fetched.size, 2);
  for (const d of fetched) {
    const last = events.filter((e) => e.digest === d).at(-1)!;
    assert.equal(last.done, last.total);
    assert.equal(await store.has(d), true);
  }
  const layerPath = store.path(byTag.layers[0]!.digest);
  const before = await stat(layerPath);

  const again: ProgressEvent[] = [];
  const byDigest = await pullImage({ store, client, ref: `${REGISTRY}/${ns}/base@${image.digest}`, onProgress: (e) => again.push(e) });
  const byTagAgain = await pullImage({ store, client, ref: target, onProgress: (e) => again.push(e) });
  assert.deepEqual(again, []);
  assert.equal((await stat(layerPath)).ino, before.ino, 'the layer blob was not written again');
  assert.deepEqual(byDigest, { ...byTag, reference: `${REGISTRY}/${ns}/base@${image.digest}` });
  assert.deepEqual(byTagAgain, byTag);

  // Pulling by a digest whose manifest is in the store needs no registry at all.
  const offline = new RegistryClient({ registry: REGISTRY, insecure: true });
  Object.defineProperty(offline, 'getManifest', { value: () => assert.fail('no manifest request expected') });
  Object.defineProperty(offline, 'getBlob', { value: () => assert.fail('no blob request expected') });
  await pullImage({ store, client: offline, ref: parseReference(`${REGISTRY}/${ns}/base@${image.digest}`) });
});

test('unpacked layers keep owners, modes, symlinks and hardlinks; unpacked once even when callers race', async () => {
  const home = path.join(work, 'home2');
  const store = openContentStore(path.join(home, 'content'));
  const pulled = await pullImage({ store, client, ref: target });
  const [a, b] = await Promise.all([ensureLayersUnpacked({ home, store, image: pulled }), ensureLayersUnpacked({ home, store, image: pulled })]);
  assert.deepEqual(a, b);
  const root = a![0]!;
  assert.equal(root, path.join(home, 'layers', 'sha256', pulled.layers[0]!.diffId.slice(7)));

  const config = await lstat(path.join(root, 'etc', 'app', 'config'));
  assert.deepEqual([config.uid, config.gid, config.mode & 0o7777], [1000, 1001, 0o644]);
  assert.equal((await lstat(path.join(root, 'bin', 'tool'))).mode & 0o7777, 0o4755);
  assert.equal((await lstat(path.join(root, 'root'))).mode & 0o7777, 0o700);
  assert.equal((await lstat(path.join(root, 'root', 'secret'))).mode & 0o7777, 0o600);
  assert.equal(await readlink(path.join(root, 'usr', 'lib', 'config-link')), '../../etc/app/config');
  assert.equal(await readlink(path.join(root, 'usr', 'lib', 'abs-link')), '/bin/tool');
  const tool = await lstat(path.join(root, 'bin', 'tool'));
  const hard = await lstat(path.join(root, 'bin', 'tool-hardlink'));
  assert.equal(hard.ino, tool.ino);
  assert.equal((await stat(path.join(root, 'bin', 'big'))).size, 3 * 1024 * 1024);
  assert.equal((await lstat(path.join(root, 'bin', 'big'))).mtimeMs, 0);
  await assert.rejects(lstat(path.join(root, 'etc', 'fifo')), { code: 'ENOENT' });
  assert.deepEqual(await readdir(path.join(home, 'layers', 'tmp')), []);

  // Two processes racing on the same layer: both succeed, one copy stays.
  const home3 = path.join(work, 'home3');
  const script = `
    import { openContentStore, pullImage, ensureLayersUnpacked, RegistryClient } from '@hearth/oci';
    const store = openContentStore(${JSON.stringify(path.join(home3, 'content'))});
    const client = new RegistryClient({ registry: ${JSON.stringify(REGISTRY)}, insecure: true });
    const image = await pullImage({ store, client, ref: ${JSON.stringify(target)} });
    console.log(JSON.stringify(await ensureLayersUnpacked({ home: ${JSON.stringify(home3)}, store, image })));
  `;
  const child = () => run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: process.cwd() });
  const [x, y] = await Promise.all([child(), child()]);
  assert.deepEqual(JSON.parse(x.stdout), JSON.parse(y.stdout));
  const raced = JSON.parse(x.stdout)[0] as string;
  assert.equal(await readFile(path.join(raced, 'etc', 'app', 'config'), 'utf8'), 'owned by 1000:1001\n');
  assert.deepEqual(await readdir(path.join(home3, 'layers', 'tmp')), []);
  assert.deepEqual(await readdir(path.join(home3, 'layers', 'sha256')), [pulled.layers[0]!.diffId.slice(7)]);
});

test('a registry that serves wrong bytes for a layer: the pull fails and the store holds no such blob', async () => {
  const realLayer = await makeTar([{ path: 'hello.txt', body: 'the real layer\n' }], { gzip: true });
  const servedLayer = await makeTar([{ path: 'hello.txt', body: 'a tampered layer\n' }], { gzip: true });
  const layerDigest = sha256Digest(realLayer);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256Digest('unused')] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha256Digest(config), size: config.length },
      layers: [{ mediaType: MEDIA_TYPES.ociLayerGzip, digest: layerDigest, size: realLayer.length }],
    }),
  );
  const server = createServer((req, res) => {
    const url = req.url ?? '';
    if (url === '/v2/') return void res.writeHead(200).end('{}');
    if (url === '/v2/evil/app/manifests/v1') return void res.writeHead(200, { 'content-type': MEDIA_TYPES.ociManifest }).end(manifest);
    if (url === `/v2/evil/app/blobs/${sha256Digest(config)}`) return void res.writeHead(200).end(config);
    // The layer: same length as promised? No matter — wrong bytes either way.
    if (url === `/v2/evil/app/blobs/${layerDigest}`) return void res.writeHead(200).end(servedLayer);
    res.writeHead(404).end();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  const evil = new RegistryClient({ registry: host, insecure: true });

  const contentRoot = path.join(work, 'home-evil', 'content');
  const store = openContentStore(contentRoot);
  await assert.rejects(pullImage({ store, client: evil, ref: `${host}/evil/app:v1` }), (err) => {
    assert.ok(isHearthError(err, 'BAD_GATEWAY'));
    assert.match(err.message, new RegExp(`registry ${host.replace(/\./g, '\\.')} served a wrong blob for ${layerDigest}`));
    return true;
  });
  assert.equal(await store.has(layerDigest), false);
  assert.deepEqual(await readdir(path.join(contentRoot, 'ingest')), []);
  // The registry's manifest and config were fine and are kept; the bad layer is not there.
  assert.deepEqual((await readdir(path.join(contentRoot, 'blobs', 'sha256'))).sort(), [sha256Digest(config), sha256Digest(manifest)].map((d) => d.slice(7)).sort());
});

test('pulling a tag that does not exist is NOT_FOUND naming it', async () => {
  const store = openContentStore(path.join(work, 'home4', 'content'));
  await assert.rejects(pullImage({ store, client, ref: `${REGISTRY}/${ns}/base:nope` }), (err) => isHearthError(err, 'NOT_FOUND') && err.message.includes(`${ns}/base:nope`));
});
