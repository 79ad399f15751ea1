/**
 * Hostile HTTP clients against a real gateway process: slow clients (slowloris), oversized
 * headers and bodies, garbage, unknown routes and bad names. Every answer is a clear error
 * (JSON with a code, or node's own 4xx for what never reaches the app), never a 500 or a
 * connection held forever. The gateway runs with short timeouts so the test is quick.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createTestDatabase, deleteRedisPrefix, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { freePort, startApp, type AppProcess } from '../helpers/stack.ts';
import { rawRequest } from './raw-http.ts';

const prefix = uniquePrefix('security-http');
const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 2000;
const BODY_LIMIT = 1024;
/** How long a raw client waits before it calls the connection "held": far past both timeouts. */
const HELD_MS = 15_000;

let db: TestDatabase;
let home: string;
let gateway: AppProcess;
let port: number;
let base: string;
let apiKey: string;

before(async () => {
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  home = await mkdtemp(path.join(os.tmpdir(), `${prefix}-home-`));
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  gateway = await startApp(
    'gateway',
    {
      HEARTH_HOME: home,
      HEARTH_PORT: String(port),
      DATABASE_URL: db.url,
      HEARTH_QUEUE_PREFIX: prefix,
      HEARTH_BODY_LIMIT: String(BODY_LIMIT),
      HEARTH_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      HEARTH_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    },
    /gateway listening/,
  );
  // The gateway writes its local admin key at start; /system needs it.
  for (let i = 0; !apiKey && i < 200; i++) {
    apiKey = await readFile(path.join(home, 'admin.key'), 'utf8').then((t) => t.trim(), () => '');
    if (!apiKey) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(apiKey, `no admin key in ${home}:\n${gateway.output()}`);
});

after(async () => {
  if (process.env.HEARTH_TEST_DEBUG) console.log(gateway?.output());
  await gateway?.stop();
  await deleteRedisPrefix(prefix);
  await db?.drop();
  if (home) await rm(home, { recursive: true, force: true });
});

/** Asserts a JSON error body with a one-line message; returns it. */
async function jsonError(res: Response): Promise<{ error: string; code: string }> {
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, `status ${res.status}`);
  const body = (await res.json()) as { error: string; code: string };
  assert.equal(typeof body.error, 'string');
  assert.ok(body.error.length > 0 && !body.error.includes('\n'), `not a one-line message: ${JSON.stringify(body.error)}`);
  return body;
}

const auth = () => ({ authorization: `Bearer ${apiKey}` });

// ------------------------------------------------------------------ slow clients

test('a client sending headers one byte at a time is cut off (408 or closed) while others are served', async () => {
  const slow = rawRequest(port, {
    first: 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n',
    drip: { every: 100, bytes: 'X-Slow: aaaaaaaaaaaaaaaa\r\n' },
    deadlineMs: HELD_MS,
  });
  // Meanwhile the gateway answers everyone else.
  await new Promise((r) => setTimeout(r, 300));
  const ok = await fetch(`${base}/healthz`);
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { status: 'ok' });

  const outcome = await slow;
  assert.ok(outcome.closedByServer, `the server held a slowloris connection for ${outcome.ms} ms`);
  assert.ok(outcome.response === '' || outcome.response.startsWith('HTTP/1.1 408'), `answered: ${outcome.response.slice(0, 100)}`);
  assert.ok(outcome.ms >= HEADERS_TIMEOUT_MS - 100, `closed after ${outcome.ms} ms, before the headers timeout`);
});

test('a connection that never sends a byte is closed', async () => {
  const outcome = await rawRequest(port, { deadlineMs: HELD_MS });
  assert.ok(outcome.closedByServer, `an idle connection was held for ${outcome.ms} ms`);
});

test('a body that trickles and never ends is cut off by the request timeout (408 or closed)', async () => {
  const outcome = await rawRequest(port, {
    first: `POST /system/functions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${apiKey}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"image":`,
    drip: { every: 150, bytes: ' ' },
    deadlineMs: HELD_MS,
  });
  assert.ok(outcome.closedByServer, `a never-ending body held the connection for ${outcome.ms} ms`);
  assert.ok(outcome.response === '' || outcome.response.startsWith('HTTP/1.1 408'), `answered: ${outcome.response.slice(0, 100)}`);
  assert.ok(outcome.ms >= REQUEST_TIMEOUT_MS - 100, `closed after ${outcome.ms} ms, before the request timeout`);
  // The gateway is still fine afterwards.
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
});

// ------------------------------------------------------------------ oversized and malformed requests

test('headers over 16 KiB get 431', async () => {
  const res = await fetch(`${base}/healthz`, { headers: { 'x-big': 'a'.repeat(20 * 1024) } });
  assert.equal(res.status, 431);
  await res.arrayBuffer();
  // Just under the limit is fine.
  const fine = await fetch(`${base}/healthz`, { headers: { 'x-big': 'a'.repeat(12 * 1024) } });
  assert.equal(fine.status, 200);
});

test('a body over the limit gets 413 TOO_LARGE naming the limit, with or without Content-Length', async () => {
  const res = await fetch(`${base}/function/anything`, { method: 'POST', body: 'x'.repeat(4 * BODY_LIMIT) });
  assert.equal(res.status, 413);
  const body = await jsonError(res);
  assert.equal(body.code, 'TOO_LARGE');
  assert.match(body.error, new RegExp(`limit of ${BODY_LIMIT} bytes`));

  // Chunked: the size is only known by counting.
  const raw = await rawRequest(port, {
    first: `POST /function/anything HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n${(4 * BODY_LIMIT).toString(16)}\r\n${'x'.repeat(4 * BODY_LIMIT)}\r\n0\r\n\r\n`,
    deadlineMs: HELD_MS,
  });
  assert.match(raw.response, /^HTTP\/1\.1 413 /);
  assert.match(raw.response, /"code":"TOO_LARGE"/);
});

test('a garbage request line gets 400 from the server and the connection is closed', async () => {
  const outcome = await rawRequest(port, { first: 'HELLO THERE\r\n\r\n', deadlineMs: HELD_MS });
  assert.match(outcome.response, /^HTTP\/1\.1 400 /);
  assert.ok(outcome.closedByServer);
});

// ------------------------------------------------------------------ routes and names

test('an unknown route is a 404 JSON error naming it; a wrong method on a known route is 404/405 JSON', async () => {
  const res = await fetch(`${base}/no/such/route`);
  assert.equal(res.status, 404);
  const body = await jsonError(res);
  assert.equal(body.code, 'NOT_FOUND');
  assert.match(body.error, /\/no\/such\/route/);

  for (const [method, url] of [
    ['DELETE', '/healthz'],
    ['POST', '/healthz'],
    ['PATCH', '/system/functions'],
  ] as const) {
    const r = await fetch(`${base}${url}`, { method, headers: auth() });
    assert.ok(r.status === 404 || r.status === 405, `${method} ${url} answered ${r.status}`);
    assert.match((await jsonError(r)).error, new RegExp(`${method}.*${url.replace('/', '\\/')}`));
  }
});

test('invalid function names in /function/:name are 400/404 JSON naming the function, never a 500', async () => {
  const names = ['UPPER', '..%2F..%2Fetc%2Fpasswd', 'a%00b', '%E0%A4%A', 'a'.repeat(300), 'x%20y', '%F0%9F%94%A5', "x'%3B--"];
  const wrong: string[] = [];
  for (const prefixPath of ['/function/', '/async-function/']) {
    for (const name of names) {
      const res = await fetch(`${base}${prefixPath}${name}`, { method: 'POST', body: '{}' });
      if (res.status !== 400 && res.status !== 404) {
        wrong.push(`${prefixPath}${name.slice(0, 40)} → ${res.status} ${(await res.text()).slice(0, 80)}`);
        continue;
      }
      const body = await jsonError(res);
      assert.ok(body.code === 'INVALID_ARGUMENT' || body.code === 'NOT_FOUND', body.code);
      assert.match(body.error, /function/);
    }
  }
  assert.deepEqual(wrong, []);
});

test('/system without an API key is 401; an invalid spec with one is 400 naming the field', async () => {
  const spec = { name: 'ok-name', runtime: 'node', handler: 'index.js' };
  const image = `127.0.0.1:5000/${prefix}/fn@sha256:${'a'.repeat(64)}`;
  const post = (body: string, headers: Record<string, string> = auth()) =>
    fetch(`${base}/system/functions`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

  const anonymous = await post(JSON.stringify({ image, spec }), {});
  assert.equal(anonymous.status, 401);
  assert.equal((await jsonError(anonymous)).code, 'UNAUTHENTICATED');

  const cases: [string, RegExp][] = [
    ['not json', /must be JSON/],
    ['[1,2]', /JSON object/],
    [JSON.stringify({ image, spec: { ...spec, memoryMb: -5 } }), /memoryMb/],
    [JSON.stringify({ image, spec: { ...spec, name: 'Bad Name' } }), /name/],
    [JSON.stringify({ image, spec: { ...spec, runtime: 'cobol' } }), /runtime/],
    [JSON.stringify({ image: 'not-pinned:latest', spec }), /image/],
    [JSON.stringify({ image, spec: { ...spec, env: 'x' } }), /env/],
  ];
  for (const [body, field] of cases) {
    const res = await post(body);
    assert.equal(res.status, 400, `${body} answered ${res.status}`);
    const err = await jsonError(res);
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.match(err.error, field);
  }
  // Nothing was created by any of them.
  const list = await fetch(`${base}/system/functions`, { headers: auth() });
  assert.deepEqual(await list.json(), []);
});

test('hostile path parameters on keyed routes are 400/404 JSON, never a 500', async () => {
  // A NUL byte cannot be stored in Postgres text; it must be refused before a query.
  const probes: [string, string][] = [
    ['GET', '/system/functions/a%00b'],
    ['GET', '/system/functions/a%00b/logs'],
    ['DELETE', '/system/functions/a%00b'],
    ['GET', '/calls/a%00b'],
    ['GET', '/calls/not-a-uuid'],
    ['DELETE', '/system/keys/a%00b'],
    ['POST', '/queues/a%00b'],
    ['GET', `/system/functions/${'a'.repeat(300)}`],
  ];
  const wrong: string[] = [];
  for (const [method, url] of probes) {
    const res = await fetch(`${base}${url}`, { method, headers: { ...auth(), 'content-type': 'application/json' }, ...(method === 'POST' ? { body: '{}' } : {}) });
    if (res.status !== 400 && res.status !== 404) {
      wrong.push(`${method} ${url} → ${res.status} ${(await res.text()).slice(0, 80)}`);
      continue;
    }
    const body = await jsonError(res);
    assert.ok(body.code === 'INVALID_ARGUMENT' || body.code === 'NOT_FOUND', body.code);
  }
  assert.deepEqual(wrong, []);
});
