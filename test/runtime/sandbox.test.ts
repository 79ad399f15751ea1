/**
 * A node function in a runc sandbox, from base layers pulled from the dev registry
 * (127.0.0.1:5000/hearth/node:latest) plus the function's code as one more layer: what
 * it serves, how its failures surface, and that nothing is left behind.
 * Needs root, runc and the registry. Run: cd /work/main && node --import tsx --test test/runtime/sandbox.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupInstances, type SandboxOptions } from '@hearth/runtime';
import { get, leftovers, leftoversWithPrefix, nodeCode, rejectsWith } from './fixtures.ts';
import { useNodeFunction } from './node-function-kit.ts';

const HANDLER = `
export default async (request) => {
  const url = new URL(request.url);
  switch (url.pathname) {
    case '/json': return { hello: 'world', list: [1, 2, 3] };
    case '/text': return 'plain text from the function';
    case '/custom':
      return new Response('short and stout', { status: 418, headers: { 'x-teapot': 'yes', 'content-type': 'text/x-tea' } });
    case '/throw': throw new Error('the order service said no');
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

const fn = useNodeFunction({ name: 'rt', handler: HANDLER });
const sandbox = (over: Partial<SandboxOptions> = {}) => fn.sandbox(over);

test('the pulled image config runs the node bootstrap', () => {
  assert.deepEqual(fn.base.imageConfig.Cmd, ['/usr/bin/node', '/opt/hearth/bootstrap.mjs']);
  assert.equal(fn.base.imageConfig.WorkingDir, '/function');
  assert.ok(fn.base.layers.length >= 1);
});

test('serves JSON, text, and a custom status with headers', async () => {
  const s = sandbox();
  await s.start();
  const opts = { timeoutMs: 5000 };

  const json = await s.invoke(get('/json'), opts);
  assert.equal(json.status, 200);
  assert.match(json.headers['content-type'] ?? '', /^application\/json/);
  assert.deepEqual(JSON.parse(json.body.toString()), { hello: 'world', list: [1, 2, 3] });

  const text = await s.invoke(get('/text'), opts);
  assert.equal(text.status, 200);
  assert.match(text.headers['content-type'] ?? '', /^text\/plain/);
  assert.equal(text.body.toString(), 'plain text from the function');

  const custom = await s.invoke(get('/custom'), opts);
  assert.equal(custom.status, 418);
  assert.equal(custom.headers['x-teapot'], 'yes');
  assert.equal(custom.headers['content-type'], 'text/x-tea');
  assert.equal(custom.body.toString(), 'short and stout');

  await s.stop();
  assert.deepEqual(await leftovers(fn.home, s.id), []);
});

test('the handler sees the method, sub-path, query, headers and body', async () => {
  const s = sandbox();
  await s.start();
  const res = await s.invoke(
    {
      method: 'PATCH',
      path: '/orders/42/items',
      query: 'expand=price&note=a%20b',
      headers: { 'content-type': 'application/json', 'x-tenant': 'acme' },
      body: Buffer.from('{"qty":3,"name":"crème"}'),
    },
    { timeoutMs: 5000 },
  );
  assert.equal(res.status, 200, res.body.toString());
  const seen = JSON.parse(res.body.toString());
  assert.equal(seen.method, 'PATCH');
  assert.equal(seen.path, '/orders/42/items');
  assert.equal(seen.query, '?expand=price&note=a%20b');
  assert.equal(seen.headers['x-tenant'], 'acme');
  assert.equal(seen.headers['content-type'], 'application/json');
  assert.equal(seen.body, '{"qty":3,"name":"crème"}');
  await s.stop();
});

test('a throwing handler answers 500 with its message in a JSON error, and keeps serving', async () => {
  const s = sandbox();
  await s.start();
  const res = await s.invoke(get('/throw'), { timeoutMs: 5000 });
  assert.equal(res.status, 500);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/);
  assert.deepEqual(JSON.parse(res.body.toString()), { error: 'the order service said no' });
  assert.equal((await s.invoke(get('/text'), { timeoutMs: 5000 })).status, 200);
  await s.stop();
});

test('a handler that never answers fails with TIMEOUT at the deadline; stop() leaves nothing', async () => {
  const s = sandbox();
  await s.start();
  const t0 = performance.now();
  const err = await rejectsWith(s.invoke(get('/hang'), { timeoutMs: 500 }), 'TIMEOUT');
  const elapsed = performance.now() - t0;
  assert.ok(elapsed >= 490 && elapsed < 1500, `TIMEOUT after ${elapsed.toFixed(0)} ms`);
  assert.match(err.message, /500 ms/);
  await s.stop();
  assert.deepEqual(await leftovers(fn.home, s.id), []);
});

test('a handler that does not load fails start() with UNAVAILABLE and the log tail; nothing is left', async () => {
  const broken = await nodeCode(fn.home, 'broken', 'export default async (request) => {\n  return { oops: ;\n};\n');
  const s = sandbox({ layers: [...fn.base.layers, broken] });
  const t0 = performance.now();
  const err = await rejectsWith(s.start(), 'UNAVAILABLE');
  assert.ok(performance.now() - t0 < 5000, 'start() gave up long after the process exited');
  assert.match(err.message, /^function failed to start/);
  assert.match(err.message, /SyntaxError: Unexpected token ';'/);
  assert.match(err.message, /cannot load \/function\/index\.js/);
  assert.deepEqual(await leftovers(fn.home, s.id), []);
  await s.stop(); // safe after a failed start
});

test('ready time: start() until the socket accepts, node base image', async (t) => {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const s = sandbox();
    const t0 = performance.now();
    await s.start();
    times.push(performance.now() - t0);
    // ready means it answers at once
    assert.equal((await s.invoke(get('/text'), { timeoutMs: 2000 })).status, 200);
    t.diagnostic(`run ${i}: ${times.at(-1)!.toFixed(0)} ms ${JSON.stringify(s.startTimings)}`);
    await s.stop();
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  t.diagnostic(`start() → ready: min ${sorted[0]!.toFixed(0)} ms, median ${median.toFixed(0)} ms, max ${sorted.at(-1)!.toFixed(0)} ms`);
  // generous: ~200 ms measured alone; a shared 2-core VM under other tests is slower
  assert.ok(median < 3000, `median start ${median.toFixed(0)} ms`);
});

test('at the end, cleanupInstances finds nothing left under the prefix', async () => {
  await fn.stopAll();
  assert.deepEqual(await cleanupInstances(fn.home, `${fn.prefix}-`), []);
  assert.deepEqual(await leftoversWithPrefix(fn.home, `${fn.prefix}-`), []);
});
