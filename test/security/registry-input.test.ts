/**
 * Hostile images: what a registry (or whoever pushed to it) can send Hearth, and what
 * Hearth does with it. Crafted layers go through the real registry; lies the real registry
 * refuses to store (wrong digests, wrong sizes) come from a stand-in on 127.0.0.1.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { isHearthError, type ErrorCode } from '@hearth/core';
import {
  DEFAULT_MAX_BLOB_BYTES,
  MEDIA_TYPES,
  RegistryClient,
  ensureLayersUnpacked,
  openContentStore,
  pullImage,
  sha256Digest,
  type ContentStore,
} from '@hearth/oci';
import { testEnv } from '../helpers/services.ts';
import { CraftedImages, imageOf, listTree, makeLayer } from './hostile-layers.ts';
import { MisbehavingRegistry } from './misbehaving-registry.ts';

const client = new RegistryClient({ registry: testEnv().registry, insecure: true });
const crafted = new CraftedImages(client);
let work: string;
let fake: MisbehavingRegistry;
let fakeClient: RegistryClient;

before(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'test-security-registry-'));
  fake = await MisbehavingRegistry.start();
  fakeClient = new RegistryClient({ registry: fake.registry, insecure: true });
});
after(async () => {
  await fake?.close();
  await crafted.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A fresh Hearth home (content store + layers) per case, inside the test's folder. */
async function newHome(name: string): Promise<{ home: string; store: ContentStore }> {
  const home = path.join(work, name);
  await mkdir(home, { recursive: true });
  return { home, store: openContentStore(path.join(home, 'content')) };
}

/** Rejects with a HearthError of `code` whose one-line message matches `message`. */
async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isHearthError(err), `not a HearthError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    assert.ok(!err.message.includes('\n'), `message is not one line: ${err.message}`);
    return true;
  });
}

/** Blobs committed to a store (ingest leftovers count too: nothing may remain of a refused write). */
const storedBlobs = async (store: ContentStore) => [...(await listTree(path.join(store.root, 'blobs'))), ...(await listTree(path.join(store.root, 'ingest')))].filter((p) => !p.endsWith('/'));

/** Serves `image` from the stand-in as `<repo>` by digest; returns the reference to pull. */
function serveImage(repo: string, layers: Buffer[]): { ref: string; image: ReturnType<typeof imageOf> } {
  const image = imageOf(layers);
  fake.manifests.set(`${repo}/${image.manifestDigest}`, image.manifest);
  fake.blobs.set(`${repo}/${sha256Digest(image.config)}`, image.config);
  for (const l of layers) fake.blobs.set(`${repo}/${sha256Digest(l)}`, l);
  return { ref: `${fake.registry}/${repo}@${image.manifestDigest}`, image };
}

/** A manifest with hand-made layer descriptors, served by digest; returns the reference. */
function serveManifest(repo: string, layers: unknown[], config: Buffer): string {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha256Digest(config), size: config.length },
      layers,
    }),
  );
  const digest = sha256Digest(manifest);
  fake.manifests.set(`${repo}/${digest}`, manifest);
  fake.blobs.set(`${repo}/${sha256Digest(config)}`, config);
  return `${fake.registry}/${repo}@${digest}`;
}

// ------------------------------------------------------------------ a registry that lies

test('a manifest whose bytes do not match the digest it was pulled by is refused, naming the digest', async () => {
  const { store } = await newHome('manifest-mismatch');
  const { ref, image } = serveImage('lies/manifest', [await makeLayer([{ path: 'a', body: 'a' }])]);
  // Same repository and digest, other bytes: a registry (or a proxy) that swapped the manifest.
  const swapped = Buffer.from(image.manifest.toString('utf8').replace('"schemaVersion":2', '"schemaVersion":2 '));
  fake.manifests.set(`lies/manifest/${image.manifestDigest}`, swapped);
  await rejectsWith(pullImage({ store, client: fakeClient, ref }), 'BAD_GATEWAY', new RegExp(`served manifest .*${image.manifestDigest}.* whose content has digest ${sha256Digest(swapped)}`));
  assert.deepEqual(await storedBlobs(store), []);
  assert.ok(!fake.requests.some((r) => r.includes('/blobs/')), 'no blob was fetched for a refused manifest');
});

test('a blob whose content does not match its digest is refused and nothing is committed', async () => {
  const { store } = await newHome('blob-mismatch');
  const layer = await makeLayer([{ path: 'etc/motd', body: 'the real layer\n' }]);
  const { ref } = serveImage('lies/blob', [layer]);
  const other = Buffer.from(layer);
  other[other.length - 20] = other[other.length - 20]! ^ 0xff; // same size, other bytes
  fake.blobs.set(`lies/blob/${sha256Digest(layer)}`, other);
  await rejectsWith(pullImage({ store, client: fakeClient, ref }), 'BAD_GATEWAY', new RegExp(`served a wrong blob for ${sha256Digest(layer)}`));
  assert.equal(await store.has(sha256Digest(layer)), false);
  // Only the (honest) manifest and config made it in; no ingest file is left behind.
  const { manifestDigest, config } = imageOf([layer]);
  assert.deepEqual(await storedBlobs(store), [manifestDigest, sha256Digest(config)].map((d) => `sha256/${d.slice(7)}`).sort());
});

test('a layer whose descriptor is larger than the limit is refused before a byte is fetched (default 2 GiB)', async () => {
  const { store } = await newHome('huge-descriptor');
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [sha256Digest('x')] } }));
  const hugeDigest = sha256Digest('pretend this is 3 GiB');
  const ref = serveManifest('lies/huge', [{ mediaType: MEDIA_TYPES.ociLayerGzip, digest: hugeDigest, size: 3 * 1024 ** 3 }], config);
  fake.requests.length = 0;
  assert.equal(DEFAULT_MAX_BLOB_BYTES, 2 * 1024 ** 3);
  await rejectsWith(pullImage({ store, client: fakeClient, ref }), 'TOO_LARGE', new RegExp(`${hugeDigest}.* is 3221225472 bytes, more than the limit of 2147483648 bytes`));
  assert.ok(!fake.requests.some((r) => r.includes('/blobs/')), `fetched: ${fake.requests.join(', ')}`);

  // The limit is an option: a 2 MiB layer under a 1 MiB limit.
  const layer = await makeLayer([{ path: 'big', body: randomBytes(2 * 1024 * 1024) }]);
  assert.ok(layer.length > 1024 * 1024);
  const small = serveImage('lies/limit', [layer]);
  await rejectsWith(pullImage({ store, client: fakeClient, ref: small.ref, maxBlobBytes: 1024 * 1024 }), 'TOO_LARGE', /more than the limit of 1048576 bytes/);
  assert.equal(await store.has(sha256Digest(layer)), false);
  const pulled = await pullImage({ store, client: fakeClient, ref: small.ref, maxBlobBytes: 4 * 1024 * 1024 });
  assert.equal(pulled.layers[0]!.size, layer.length);
});

test('a registry that streams more than the descriptor says is cut off, and nothing is stored', async () => {
  const { store } = await newHome('endless-blob');
  const layer = await makeLayer([{ path: 'a', body: 'small' }]);
  const { ref } = serveImage('lies/endless', [layer]);
  let sent = 0;
  let closedEarly = false;
  // The right first bytes, then 256 MiB more, with a Content-Length to match the lie.
  fake.blobs.set(`lies/endless/${sha256Digest(layer)}`, (_req, res) => {
    const total = 256 * 1024 * 1024;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
    const chunk = Buffer.alloc(64 * 1024);
    res.on('close', () => (closedEarly = sent < total));
    const pump = () => {
      while (sent < total) {
        const piece = sent === 0 ? Buffer.concat([layer, chunk]).subarray(0, chunk.length) : chunk;
        sent += piece.length;
        if (!res.write(piece)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  await rejectsWith(pullImage({ store, client: fakeClient, ref }), 'BAD_GATEWAY', new RegExp(`wrong blob for ${sha256Digest(layer)}.*more than the expected ${layer.length} bytes`));
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(closedEarly, 'the download was abandoned');
  assert.ok(sent < 64 * 1024 * 1024, `the client kept reading: ${sent} bytes were sent`);
  assert.equal(await store.has(sha256Digest(layer)), false);
});

test('a stream without a known size is cut off at maxBytes by the content store (TOO_LARGE)', async () => {
  const { store } = await newHome('store-cap');
  const data = Buffer.alloc(3 * 1024 * 1024, 1);
  const chunks = Array.from({ length: 48 }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
  await rejectsWith(store.write(sha256Digest(data), Readable.from(chunks), { maxBytes: 1024 * 1024 }), 'TOO_LARGE', /larger than the limit of 1048576 bytes/);
  assert.deepEqual(await storedBlobs(store), []);
});

test('malformed manifests and descriptors are BAD_GATEWAY naming what is wrong, never a crash or a path', async () => {
  const { store } = await newHome('malformed');
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [sha256Digest('x')] } }));
  const cases: [unknown[], RegExp][] = [
    [[{ mediaType: MEDIA_TYPES.ociLayerGzip, digest: 'sha256:../../../../etc/passwd', size: 1 }], /layer 0 of .* has digest "sha256:\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd", not sha256:<64 hex>/],
    [[{ mediaType: MEDIA_TYPES.ociLayerGzip, digest: sha256Digest('x'), size: -1 }], /has size -1, not a byte count/],
    [[{ mediaType: MEDIA_TYPES.ociLayerGzip, digest: sha256Digest('x'), size: '10' }], /has size "10", not a byte count/],
    [[null], /layer 0 of .* has no descriptor/],
  ];
  for (const [layers, message] of cases) {
    fake.requests.length = 0;
    await rejectsWith(pullImage({ store, client: fakeClient, ref: serveManifest('lies/malformed', layers, config) }), 'BAD_GATEWAY', message);
    assert.ok(!fake.requests.some((r) => r.includes('/blobs/')), `fetched: ${fake.requests.join(', ')}`);
  }
  // Valid JSON that is not an object.
  const nul = Buffer.from('null');
  fake.manifests.set(`lies/malformed/${sha256Digest(nul)}`, nul);
  await rejectsWith(pullImage({ store, client: fakeClient, ref: `${fake.registry}/lies/malformed@${sha256Digest(nul)}` }), 'BAD_GATEWAY', /not a JSON object/);
  // A config whose diff_ids are not digests.
  const badConfig = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: ['../x'] } }));
  const layer = await makeLayer([{ path: 'a', body: 'a' }]);
  fake.blobs.set(`lies/malformed/${sha256Digest(layer)}`, layer);
  const ref = serveManifest('lies/malformed', [{ mediaType: MEDIA_TYPES.ociLayerGzip, digest: sha256Digest(layer), size: layer.length }], badConfig);
  await rejectsWith(pullImage({ store, client: fakeClient, ref }), 'BAD_GATEWAY', /rootfs\.diff_ids that are not a list of sha256 digests/);
  assert.equal(await store.has(sha256Digest(layer)), false);
});

// ------------------------------------------------------------------ tar bombs (real registry)

test('a gzip bomb stops at maxUnpackedBytes with TOO_LARGE, and nothing is left under layers/', async () => {
  // 32 MiB of zeros gzip to ~32 KiB.
  const layer = await makeLayer([{ path: 'zeros', body: Buffer.alloc(32 * 1024 * 1024) }]);
  assert.ok(layer.length < 256 * 1024);
  const ref = await crafted.push('gzip-bomb', [layer]);
  const { home, store } = await newHome('gzip-bomb');
  const image = await pullImage({ store, client, ref });
  await rejectsWith(ensureLayersUnpacked({ home, store, image, limits: { maxUnpackedBytes: 4 * 1024 * 1024 } }), 'TOO_LARGE', /unpacks to more than the limit of 4194304 bytes/);
  assert.deepEqual(await listTree(path.join(home, 'layers')), ['sha256/', 'tmp/']);
  // The same layer within the (default 4 GiB) limit unpacks: it was the limit that refused it.
  const [dir] = await ensureLayersUnpacked({ home, store, image });
  assert.equal((await stat(path.join(dir!, 'zeros'))).size, 32 * 1024 * 1024);
});

test('a layer with too many entries stops at maxEntries with TOO_LARGE, and nothing is left under layers/', async () => {
  const layer = await makeLayer(Array.from({ length: 3000 }, (_, i) => ({ path: `d${i % 10}/f${i}`, body: '' })));
  const ref = await crafted.push('entry-bomb', [layer]);
  const { home, store } = await newHome('entry-bomb');
  const image = await pullImage({ store, client, ref });
  await rejectsWith(ensureLayersUnpacked({ home, store, image, limits: { maxEntries: 1000 } }), 'TOO_LARGE', /more than the limit of 1000 entries/);
  assert.deepEqual(await listTree(path.join(home, 'layers')), ['sha256/', 'tmp/']);
  const [dir] = await ensureLayersUnpacked({ home, store, image });
  assert.equal((await listTree(dir!)).length, 3010);
});

// ------------------------------------------------------------------ escapes (real registry)

/** Pulls `ref` into a fresh home and unpacks it; returns the home and the outcome. */
async function pullAndUnpack(name: string, ref: string): Promise<{ home: string; result: Promise<string[]> }> {
  const { home, store } = await newHome(name);
  const image = await pullImage({ store, client, ref });
  const result = ensureLayersUnpacked({ home, store, image });
  result.catch(() => {}); // the caller asserts on it
  return { home, result };
}

test('an entry "../../etc/x" is refused and nothing is written outside the layer folder', async () => {
  const ref = await crafted.push('dotdot', [await makeLayer([{ path: 'ok', body: 'fine' }, { path: '../../etc/x', body: 'escaped' }])]);
  const { home, result } = await pullAndUnpack('dotdot', ref);
  await rejectsWith(result, 'INVALID_ARGUMENT', /path "\.\.\/\.\.\/etc\/x" has a "\.\." component/);
  // From <home>/layers/tmp/<scratch>/, "../../etc/x" is <home>/layers/etc/x; nothing there or anywhere.
  assert.deepEqual(await listTree(path.join(home, 'layers')), ['sha256/', 'tmp/']);
  assert.deepEqual((await listTree(home)).filter((p) => !p.startsWith('content/')), ['layers/', 'layers/sha256/', 'layers/tmp/']);
});

test('an absolute symlink followed by a write through it is refused; the target folder stays empty', async () => {
  const decoy = path.join(work, 'decoy-etc');
  await mkdir(decoy, { recursive: true });
  const ref = await crafted.push('symlink-write', [
    await makeLayer([
      { path: 'etc-link', type: 'SymbolicLink', linkpath: decoy },
      { path: 'etc-link/pwned', body: 'written through the link' },
    ]),
  ]);
  const { home, result } = await pullAndUnpack('symlink-write', ref);
  await rejectsWith(result, 'INVALID_ARGUMENT', /entry "etc-link\/pwned" would be written through the symlink "etc-link"/);
  assert.deepEqual(await listTree(decoy), []);
  assert.deepEqual(await listTree(path.join(home, 'layers')), ['sha256/', 'tmp/']);
});

test('a hardlink to /etc/passwd is refused, or bound to the layer\'s own file when it has one', async () => {
  const passwdBefore = await readFile('/etc/passwd');
  const outside = await crafted.push('hardlink-out', [await makeLayer([{ path: 'passwd', type: 'Link', linkpath: '/etc/passwd' }])]);
  const a = await pullAndUnpack('hardlink-out', outside);
  await rejectsWith(a.result, 'INVALID_ARGUMENT', /hardlink "passwd" → "\/etc\/passwd": target is not in this layer/);
  assert.deepEqual(await listTree(path.join(a.home, 'layers')), ['sha256/', 'tmp/']);

  const dotdot = await crafted.push('hardlink-dotdot', [await makeLayer([{ path: 'passwd', type: 'Link', linkpath: '../../../../../../../etc/passwd' }])]);
  const b = await pullAndUnpack('hardlink-dotdot', dotdot);
  await rejectsWith(b.result, 'INVALID_ARGUMENT', /points outside the layer/);

  // "/etc/passwd" inside a layer means the layer's own etc/passwd, never the host's.
  const own = await crafted.push('hardlink-own', [
    await makeLayer([
      { path: 'etc/passwd', body: 'root:x:0:0:layer:/root:/bin/sh\n' },
      { path: 'passwd', type: 'Link', linkpath: '/etc/passwd' },
    ]),
  ]);
  const c = await pullAndUnpack('hardlink-own', own);
  const [dir] = await c.result;
  const link = await stat(path.join(dir!, 'passwd'));
  assert.equal(link.ino, (await stat(path.join(dir!, 'etc', 'passwd'))).ino);
  assert.notEqual(link.ino, (await stat('/etc/passwd')).ino);
  assert.equal(await readFile(path.join(dir!, 'passwd'), 'utf8'), 'root:x:0:0:layer:/root:/bin/sh\n');
  assert.deepEqual(await readFile('/etc/passwd'), passwdBefore);
});

test('device files and FIFOs in a layer are skipped; the rest of the layer unpacks', async () => {
  const ref = await crafted.push('devices', [
    await makeLayer([
      { path: 'dev/', type: 'Directory' },
      { path: 'dev/sda', type: 'BlockDevice', devmaj: 8, devmin: 0, mode: 0o666 },
      { path: 'dev/mem', type: 'CharacterDevice', devmaj: 1, devmin: 1, mode: 0o666 },
      { path: 'dev/kmsg', type: 'CharacterDevice', devmaj: 1, devmin: 11, mode: 0o666 },
      { path: 'dev/pipe', type: 'FIFO' },
      { path: 'app/index.js', body: 'export default () => "ok";\n' },
    ]),
  ]);
  const { result } = await pullAndUnpack('devices', ref);
  const [dir] = await result;
  assert.deepEqual(await listTree(dir!), ['app/', 'app/index.js', 'dev/']);
});
