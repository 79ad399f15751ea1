/**
 * Hardening of runc sandboxes: the function runs as an unprivileged uid unless the image
 * names a user, /tmp is a 64 MB tmpfs it can use, and a response over the size limit is
 * refused with a clear error while the instance keeps answering.
 * Needs root, runc and the registry. Run: cd /work/main && node --import tsx --test test/runtime/hardening.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_MAX_RESPONSE_BYTES, type SandboxOptions } from '@hearth/runtime';
import { get, leftovers, rejectsWith } from './fixtures.ts';
import { useNodeFunction } from './node-function-kit.ts';

const HANDLER = String.raw`
import fs from 'node:fs';
export default async (request) => {
  const url = new URL(request.url);
  switch (url.pathname) {
    case '/id':
      // the node image has no id(1); the kernel's view of the process is the same answer
      return { uid: process.getuid(), gid: process.getgid(), status: fs.readFileSync('/proc/self/status', 'utf8').match(/^Uid:\s+(.*)$/m)[1] };
    case '/tmp': {
      const mb = Number(url.searchParams.get('mb'));
      try {
        const fd = fs.openSync('/tmp/fill', 'w');
        for (let i = 0; i < mb; i++) fs.writeSync(fd, Buffer.alloc(1 << 20, 1));
        fs.closeSync(fd);
        return { written: mb };
      } catch (err) { return { error: err.code }; } finally { fs.rmSync('/tmp/fill', { force: true }); }
    }
    case '/big': return new Uint8Array(Number(url.searchParams.get('bytes'))).fill(120);
    case '/stream':
      // no Content-Length: the size shows only while reading
      return new Response(new ReadableStream({
        start(c) { for (let i = 0; i < Number(url.searchParams.get('mb')); i++) c.enqueue(new Uint8Array(1 << 20)); c.close(); },
      }));
    default: return 'ok';
  }
};
`;

const fn = useNodeFunction({ name: 'rt-hard', handler: HANDLER, limits: {memoryMb:192,cpu:1} });
const sandbox = (over: Partial<SandboxOptions> = {}) => fn.sandbox(over);

test('an image with no User runs the function as nobody (65534), not root; an image user is kept', async () => {
  assert.ok(!fn.base.imageConfig.User, 'the base image names no user');
  const s = sandbox();
  await s.start();
  const inside = JSON.parse((await s.invoke(get('/id'), { timeoutMs: 5000 })).body.toString());
  assert.deepEqual(inside, { uid: 65534, gid: 65534, status: '65534\t65534\t65534\t65534' }); // real, effective, saved, fs
  await s.stop();

  const named = sandbox({ imageConfig: { ...fn.base.imageConfig, User: 'hearth' } });
  await named.start();
  assert.equal(JSON.parse((await named.invoke(get('/id'), { timeoutMs: 5000 })).body.toString()).uid, 1000);
  await named.stop();
});

test('/tmp is writable and holds 64 MB at most', async () => {
  const s = sandbox();
  await s.start();
  assert.deepEqual(JSON.parse((await s.invoke(get('/tmp', 'mb=32'), { timeoutMs: 10_000 })).body.toString()), { written: 32 });
  assert.deepEqual(JSON.parse((await s.invoke(get('/tmp', 'mb=65'), { timeoutMs: 10_000 })).body.toString()), { error: 'ENOSPC' });
  await s.stop();
});

test('a response over the limit is TOO_LARGE naming the limit; the instance still answers', async () => {
  assert.equal(DEFAULT_MAX_RESPONSE_BYTES, 6 * 1024 * 1024);
  const s = sandbox();
  await s.start();
  const atLimit = await s.invoke(get('/big', `bytes=${DEFAULT_MAX_RESPONSE_BYTES}`), { timeoutMs: 10_000 });
  assert.equal(atLimit.body.length, DEFAULT_MAX_RESPONSE_BYTES);
  const over = await rejectsWith(s.invoke(get('/big', `bytes=${DEFAULT_MAX_RESPONSE_BYTES + 1}`), { timeoutMs: 10_000 }), 'TOO_LARGE');
  assert.match(over.message, /larger than the limit of 6 MB/);
  assert.equal((await s.invoke(get('/'), { timeoutMs: 5000 })).body.toString(), 'ok');
  // a streamed body (no Content-Length) is cut off once it passes the limit
  const streamed = await rejectsWith(s.invoke(get('/stream', 'mb=20'), { timeoutMs: 10_000 }), 'TOO_LARGE');
  assert.match(streamed.message, /6 MB/);
  assert.equal((await s.invoke(get('/'), { timeoutMs: 5000 })).body.toString(), 'ok');
  await s.stop();
  assert.deepEqual(await leftovers(fn.home, s.id), []);
});

test('maxResponseBytes sets a smaller limit per sandbox', async () => {
  const s = sandbox({ maxResponseBytes: 1024 });
  await s.start();
  assert.equal((await s.invoke(get('/big', 'bytes=1024'), { timeoutMs: 5000 })).body.length, 1024);
  const err = await rejectsWith(s.invoke(get('/big', 'bytes=1025'), { timeoutMs: 5000 }), 'TOO_LARGE');
  assert.match(err.message, /limit of 1 KB/);
  assert.equal((await s.invoke(get('/'), { timeoutMs: 5000 })).body.toString(), 'ok');
  await s.stop();
});
