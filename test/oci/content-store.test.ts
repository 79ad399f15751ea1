import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { isHearthError } from '@hearth/core';
import { openContentStore, sha256Digest } from '@hearth/oci';
import { tempDir } from './helpers.ts';

const root = await tempDir('store');
after(() => rm(root, { recursive: true, force: true }));
const store = openContentStore(path.join(root, 'content'));

test('a blob is stored under blobs/sha256/<hex> once its digest matches', async () => {
  const data = Buffer.from('hello layer\n');
  const digest = sha256Digest(data);
  assert.equal(await store.has(digest), false);
  await store.write(digest, Readable.from([data.subarray(0, 5), data.subarray(5)]), { size: data.length });
  assert.equal(await store.has(digest), true);
  assert.equal(store.path(digest), path.join(root, 'content', 'blobs', 'sha256', digest.slice(7)));
  assert.deepEqual(await store.read(digest), data);
  assert.deepEqual(await readdir(path.join(root, 'content', 'ingest')), []);
  await store.delete(digest);
  assert.equal(await store.has(digest), false);
  assert.throws(() => store.path(digest), (err) => isHearthError(err, 'NOT_FOUND'));
});

test('content that does not match its digest is refused and nothing is stored', async () => {
  const claimed = sha256Digest('the real bytes');
  const tampered = Buffer.from('tampered bytes');
  await assert.rejects(store.write(claimed, tampered), (err) => {
    assert.ok(isHearthError(err, 'INVALID_ARGUMENT'));
    assert.match(err.message, new RegExp(claimed));
    assert.match(err.message, new RegExp(sha256Digest(tampered)));
    return true;
  });
  assert.equal(await store.has(claimed), false);
  assert.deepEqual(await readdir(path.join(root, 'content', 'ingest')), []);
});

test('a source longer than the expected size is cut off and refused', async () => {
  const data = Buffer.alloc(1024 * 1024, 7);
  const digest = sha256Digest(data);
  await assert.rejects(store.write(digest, Readable.from([data, data]), { size: data.length }), (err) => isHearthError(err, 'INVALID_ARGUMENT'));
  await assert.rejects(store.write(digest, data, { size: data.length - 1 }), (err) => isHearthError(err, 'INVALID_ARGUMENT'));
  assert.equal(await store.has(digest), false);
  assert.deepEqual(await readdir(path.join(root, 'content', 'ingest')), []);
});

test('a malformed digest is an INVALID_ARGUMENT', async () => {
  await assert.rejects(store.write('sha256:abc', Buffer.from('x')), (err) => isHearthError(err, 'INVALID_ARGUMENT'));
  await assert.rejects(store.write('md5:' + 'a'.repeat(32), Buffer.from('x')), (err) => isHearthError(err, 'INVALID_ARGUMENT'));
});
