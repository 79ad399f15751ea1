import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient, parseReference } from '@hearth/oci';
import { createTestDatabase, testEnv, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { REPO_ROOT, runCli, startStack, type TestStack } from '../helpers/stack.ts';
import { runcIds } from '../runtime/fixtures.ts';

const prefix = uniquePrefix('e2e');
const fnName = `${prefix}-echo`;
const BODY_LIMIT = 1024 * 1024;

let db: TestDatabase;
let stack: TestStack;
let workdir: string;
let pushedRef: string | undefined;
let stackStopped = false;

before(async () => {
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  // No stem cells: these tests name the cold path (test/e2e/warm-pools.test.ts covers stem cells).
  stack = await startStack({ prefix, databaseUrl: db.url, env: { HEARTH_BODY_LIMIT: String(BODY_LIMIT), HEARTH_STEM_CELLS: '0' } });
  workdir = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-src-`));
  const src = path.join(REPO_ROOT, 'test/fixtures/functions/echo');
  const dir = path.join(workdir, fnName);
  await fs.cp(src, dir, { recursive: true });
  const yaml = await fs.readFile(path.join(dir, 'hearth.yaml'), 'utf8');
  await fs.writeFile(path.join(dir, 'hearth.yaml'), yaml.replace('name: echo', `name: ${fnName}\nenv: { GREETING: hi }`));
});

after(async () => {
  if (process.env.HEARTH_TEST_DEBUG) console.log(stack?.gateway.output(), stack?.worker.output());
  if (!stackStopped) await stack?.stopApps();
  if (pushedRef) {
    const ref = parseReference(pushedRef);
    await new RegistryClient({ registry: ref.registry, insecure: true }).deleteManifest(ref.repository, ref.digest!).catch(() => {});
  }
  await db?.drop();
  if (stack) await fs.rm(stack.home, { recursive: true, force: true });
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const jsonOf = (res: Response): Promise<any> => res.json();
const call = (sub: string, init?: RequestInit) => fetch(`${stack.gatewayUrl}/function/${fnName}${sub}`, init);

test('hearth deploy builds, pushes and registers the function, printing the image pinned by digest', async () => {
  const res = await runCli(['deploy', fnName], { cwd: workdir, env: { ...stack.env, HEARTH_REGISTRY: testEnv().registry } });
  assert.equal(res.code, 0, res.stderr);
  const line = res.stdout.split('\n').find((l) => /@sha256:[a-f0-9]{64}$/.test(l.trim()));
  assert.ok(line, `no ref@sha256 line in:\n${res.stdout}`);
  pushedRef = line.trim();
  assert.match(pushedRef, new RegExp(`/fn/${fnName}(:[^@]+)?@sha256:[a-f0-9]{64}$`));
  assert.match(res.stdout, new RegExp(`/function/${fnName}`));

  const ls = await runCli(['ls'], { cwd: workdir, env: stack.env });
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, new RegExp(fnName));
});

test('an HTTP call reaches the handler with method, sub-path, query, headers and body', async () => {
  const res = await call('/orders/42?expand=items&limit=5', { method: 'POST', body: 'world', headers: { 'x-test': 'yes', 'content-type': 'text/plain' } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/);
  assert.ok(res.headers.get('x-call-id'));
  assert.equal(res.headers.get('x-hearth-start'), 'cold');
  const seen = await jsonOf(res);
  assert.equal(seen.method, 'POST');
  assert.equal(seen.path, '/orders/42');
  assert.deepEqual(seen.query, { expand: 'items', limit: '5' });
  assert.equal(seen.headers['x-test'], 'yes');
  assert.equal(seen.body, 'world');
  assert.equal(seen.env.GREETING, 'hi');
  assert.equal(seen.callId, res.headers.get('x-call-id'));

  const again = await call('/', { method: 'GET' });
  assert.equal(again.status, 200);
  assert.equal(again.headers.get('x-hearth-start'), 'warm');
  const second = await jsonOf(again);
  assert.equal(second.calls, seen.calls + 1, 'the warm call is served by the same instance');
  assert.equal(second.method, 'GET');
  assert.equal(second.path, '/');
});

test("the function's own status, headers and body pass through", async () => {
  const res = await call('/teapot');
  assert.equal(res.status, 418);
  assert.equal(res.headers.get('x-kettle'), 'on');
  assert.equal(res.headers.get('content-type'), 'text/x-tea');
  assert.equal(await res.text(), 'short and stout');
});

test('hearth invoke prints the response body', async () => {
  const res = await runCli(['invoke', fnName, '--data', 'from-cli', '--path', '/json'], { cwd: workdir, env: stack.env });
  assert.equal(res.code, 0, res.stderr);
  assert.deepEqual(JSON.parse(res.stdout), { ok: true, n: 42 });
});

test('a handler that throws answers 500 with its message, and the next call works', async () => {
  const res = await call('/throw');
  assert.equal(res.status, 500);
  assert.match((await jsonOf(res)).error, /boom: the handler threw on purpose/);
  const next = await call('/json');
  assert.equal(next.status, 200);
});

test('a handler past its timeout answers 504, its instance is killed, and the next call works', async () => {
  const t0 = Date.now();
  const res = await call('/sleep');
  assert.equal(res.status, 504);
  const body = await jsonOf(res);
  assert.match(body.error, /timed out after 2000 ms/);
  assert.ok(Date.now() - t0 < 10000, 'answered near the function timeout, not the gateway allowance');
  const next = await call('/json');
  assert.equal(next.status, 200);
});

test('a handler that exits answers a clear 502, and the next call starts a new instance', async () => {
  const res = await call('/crash');
  assert.equal(res.status, 502);
  assert.match((await jsonOf(res)).error, /crashed/);
  const next = await call('/');
  assert.equal(next.status, 200);
  assert.equal(next.headers.get('x-hearth-start'), 'cold');
});

test('an unknown function is a 404 with a JSON error', async () => {
  const res = await fetch(`${stack.gatewayUrl}/function/${prefix}-nope`);
  assert.equal(res.status, 404);
  assert.match((await jsonOf(res)).error, /not found/);
});

test('a body over the limit is refused with 413 and the next call works', async () => {
  const res = await call('/', { method: 'POST', body: Buffer.alloc(BODY_LIMIT + 1024, 97) });
  assert.equal(res.status, 413);
  assert.match((await jsonOf(res)).error, /larger than the limit/);
  const next = await call('/', { method: 'POST', body: 'small' });
  assert.equal(next.status, 200);
});

test('what the function prints is in hearth logs, and each call is recorded', async () => {
  const marker = `marker-${Date.now()}`;
  assert.equal((await call('/log', { method: 'POST', body: marker })).status, 200);
  const deadline = Date.now() + 5000;
  let logs = '';
  while (Date.now() < deadline && !logs.includes(marker)) {
    const res = await runCli(['logs', fnName], { cwd: workdir, env: stack.env });
    logs = res.stdout;
    if (!logs.includes(marker)) await new Promise((r) => setTimeout(r, 200));
  }
  assert.match(logs, new RegExp(`log line from ${fnName}: ${marker}`));

  const rows = await jsonOf(await fetch(`${stack.gatewayUrl}/system/functions/${fnName}/invocations?limit=100`, { headers: stack.authHeaders }));
  const statuses = new Set(rows.map((r: { status: string }) => r.status));
  for (const s of ['succeeded', 'failed', 'timeout', 'error']) assert.ok(statuses.has(s), `an invocation with status ${s}`);
  assert.ok(rows.some((r: { cold: boolean }) => r.cold));
});

test('a redeploy makes a new version that serves the next call; hearth rm makes the function 404', async () => {
  const dir = path.join(workdir, fnName);
  const code = await fs.readFile(path.join(dir, 'index.js'), 'utf8');
  await fs.writeFile(path.join(dir, 'index.js'), code.replace("case '/json':", "case '/version':\n      return 'two';\n    case '/json':"));
  const res = await runCli(['deploy', fnName], { cwd: workdir, env: { ...stack.env, HEARTH_REGISTRY: testEnv().registry } });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /version 2/);
  const ref = res.stdout.split('\n').find((l) => /@sha256:[a-f0-9]{64}$/.test(l.trim()))!.trim();
  const served = await call('/version');
  assert.equal(await served.text(), 'two');
  assert.equal(served.headers.get('x-hearth-start'), 'cold', 'the new version gets its own instance');

  const rm = await runCli(['rm', fnName], { cwd: workdir, env: stack.env });
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal((await call('/version')).status, 404);
  const again = await runCli(['rm', fnName], { cwd: workdir, env: stack.env });
  assert.equal(again.code, 3);
  assert.match(again.stderr, /not found/);
  const r = parseReference(ref);
  await new RegistryClient({ registry: r.registry, insecure: true }).deleteManifest(r.repository, r.digest!).catch(() => {});
});

test('after the worker stops, no container, overlay mount or instance folder is left', async () => {
  await stack.stopApps();
  stackStopped = true;
  assert.deepEqual(runcIds().filter((id) => id.startsWith(prefix)), []);
  const mounts = await fs.readFile('/proc/self/mountinfo', 'utf8');
  assert.ok(!mounts.includes(stack.home), 'no mount under the worker home');
  const instances = await fs.readdir(path.join(stack.home, 'instances')).catch(() => []);
  assert.deepEqual(instances, []);
});
