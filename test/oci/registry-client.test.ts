import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { isHearthError } from '@hearth/core';
import { MEDIA_TYPES, RegistryClient, sha256Digest, type ProgressEvent } from '@hearth/oci';
import { Pushed, newClient, testNamespace } from './helpers.ts';

const client = newClient();
const ns = testNamespace();
const pushed = new Pushed(client);
after(() => pushed.cleanup());

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

test('ping: an unreachable registry is UNAVAILABLE and the message names it', async () => {
  await client.ping();
  const port = await freePort();
  const dead = new RegistryClient({ registry: `127.0.0.1:${port}`, insecure: true });
  await assert.rejects(dead.ping(), (err) => {
    assert.ok(isHearthError(err, 'UNAVAILABLE'));
    assert.match(err.message, new RegExp(`registry 127\\.0\\.0\\.1:${port} is unreachable: connect ECONNREFUSED`));
    return true;
  });
});

test('a missing manifest is NOT_FOUND naming the reference', async () => {
  await assert.rejects(client.getManifest(`${ns}/nothing`, 'v9'), (err) => {
    assert.ok(isHearthError(err, 'NOT_FOUND'));
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:5000/${ns}/nothing:v9`));
    return true;
  });
});

test('chunked upload of a multi-chunk blob, then HEAD and GET give it back', async () => {
  const repo = `${ns}/chunks`;
  const data = randomBytes(3 * 1024 * 1024 + 123);
  const digest = sha256Digest(data);
  const events: ProgressEvent[] = [];
  await client.uploadBlob(repo, digest, data, { chunkSize: 1024 * 1024, onProgress: (e) => events.push(e) });
  pushed.blobs.push({ repo, digest });
  // 4 PATCHes of at most 1 MiB, each reported.
  assert.deepEqual(events.map((e) => e.done), [1, 2, 3].map((n) => n * 1024 * 1024).concat(data.length));
  assert.ok(events.every((e) => e.total === data.length && e.digest === digest));
  assert.equal(await client.hasBlob(repo, digest), data.length);
  const chunks: Buffer[] = [];
  for await (const c of await client.getBlob(repo, digest)) chunks.push(c as Buffer);
  assert.ok(Buffer.concat(chunks).equals(data));

  // Uploading it again is a no-op (the registry has it): one "done" event, no PATCH.
  const again: ProgressEvent[] = [];
  await client.uploadBlob(repo, digest, data, { chunkSize: 1024 * 1024, onProgress: (e) => again.push(e) });
  assert.deepEqual(again.map((e) => e.done), [data.length]);
});

test('a blob whose bytes do not match its digest is refused by the registry', async () => {
  const repo = `${ns}/chunks`;
  const digest = sha256Digest('something else');
  await assert.rejects(client.uploadBlob(repo, digest, Buffer.from('not that')), (err) => {
    assert.ok(isHearthError(err));
    assert.match(err.message, /DIGEST_INVALID|digest/i);
    return true;
  });
  assert.equal(await client.hasBlob(repo, digest), undefined);
});

test('cross-repository mount, and a mount of an unknown blob says false', async () => {
  const from = `${ns}/mount-src`;
  const to = `${ns}/mount-dst`;
  const data = randomBytes(64 * 1024);
  const digest = sha256Digest(data);
  await client.uploadBlob(from, digest, data);
  pushed.blobs.push({ repo: from, digest });
  assert.equal(await client.hasBlob(to, digest), undefined);
  assert.equal(await client.mountBlob(to, digest, from), true);
  pushed.blobs.push({ repo: to, digest });
  assert.equal(await client.hasBlob(to, digest), data.length);

  const unknown = sha256Digest(randomBytes(16));
  assert.equal(await client.mountBlob(to, unknown, from), false);
  assert.equal(await client.hasBlob(to, unknown), undefined);

  // uploadBlob with mountFrom mounts when it can (no bytes sent)...
  const third = `${ns}/mount-third`;
  const events: ProgressEvent[] = [];
  await client.uploadBlob(third, digest, data, { mountFrom: from, chunkSize: 1024, onProgress: (e) => events.push(e) });
  pushed.blobs.push({ repo: third, digest });
  assert.deepEqual(events.map((e) => e.done), [data.length]);
  // ...and uploads when the mount is declined.
  const fresh = randomBytes(5000);
  const freshDigest = sha256Digest(fresh);
  const uploaded: ProgressEvent[] = [];
  await client.uploadBlob(third, freshDigest, fresh, { mountFrom: from, chunkSize: 2048, onProgress: (e) => uploaded.push(e) });
  pushed.blobs.push({ repo: third, digest: freshDigest });
  assert.deepEqual(uploaded.map((e) => e.done), [2048, 4096, 5000]);
  assert.equal(await client.hasBlob(third, freshDigest), 5000);
});

test('manifests: put by tag, get with its digest, delete', async () => {
  const repo = `${ns}/manifests`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const configDigest = sha256Digest(config);
  await client.uploadBlob(repo, configDigest, config);
  pushed.blobs.push({ repo, digest: configDigest });
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: configDigest, size: config.length },
      layers: [],
    }),
  );
  const digest = await client.putManifest(repo, 'v1', bytes, MEDIA_TYPES.ociManifest);
  assert.equal(digest, sha256Digest(bytes));
  const byTag = await client.getManifest(repo, 'v1');
  assert.equal(byTag.digest, digest);
  assert.equal(byTag.mediaType, MEDIA_TYPES.ociManifest);
  assert.ok(byTag.bytes.equals(bytes));
  const byDigest = await client.getManifest(repo, digest);
  assert.equal(byDigest.manifest.config.digest, configDigest);
  await client.deleteManifest(repo, digest);
  await assert.rejects(client.getManifest(repo, digest), (err) => isHearthError(err, 'NOT_FOUND'));
});
