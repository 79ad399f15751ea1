// The registry down during a cold start: a clear 503 JSON error that names the registry, and
// once the registry is back the same call succeeds, with nothing restarted. Runs against a
// registry of its own (a copy of hearth/node in it), never the shared one.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createTestDatabase, deleteRedisPrefix, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { runCli, startStack, type TestStack } from '../helpers/stack.ts';
import { containers, deployFixture, privateRegistry, request, show, type PrivateService } from './fault-kit.ts';

const prefix = uniquePrefix('fault-reg');
const fnName = `${prefix}-fn`;

let db: TestDatabase;
let registry: PrivateService;
let stack: TestStack;
let image = '';
let workdir = '';

before(async () => {
  registry = await privateRegistry();
  db = await createTestDatabase(prefix.replaceAll('-', '_'));
  stack = await startStack({ prefix, databaseUrl: db.url, env: { HEARTH_STEM_CELLS: '0', HEARTH_REGISTRY: registry.address } });
  ({ image, workdir } = await deployFixture(stack, 'jobs', fnName, { registry: registry.address }));
});

after(async () => {
  if (process.env.HEARTH_TEST_DEBUG) console.log(stack?.gateway.output(), stack?.worker.output());
  await stack?.stopApps();
  await db?.drop();
  await deleteRedisPrefix(prefix);
  // The whole registry goes, with every image in it.
  await registry?.destroy();
  if (stack) {
    const left = await containers(prefix);
    await fs.rm(stack.home, { recursive: true, force: true });
    assert.deepEqual(left, []);
  }
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

const call = (name: string) => request(`${stack.gatewayUrl}/function/${name}/?key=reg`, { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });

function assertRegistryUnavailable(res: Awaited<ReturnType<typeof call>>): void {
  assert.equal(res.status, 503, `a cold start without the registry: ${show(res)}`);
  assert.equal(typeof res.json?.error, 'string', `a JSON error: ${show(res)}`);
  assert.match(res.json.error, /registry/i, 'the error names the registry');
  assert.ok(res.json.error.includes(registry.address), `the error names ${registry.address}: ${res.json.error}`);
  assert.ok(res.ms < 30_000, `answered in ${res.ms} ms, not after the caller's whole allowance`);
}

test('a cold start while the registry is down answers 503 naming the registry; the same call succeeds once it is back', async () => {
  await registry.stop();
  const down = await call(fnName);
  assertRegistryUnavailable(down);
  // Still down: a second try fails the same way (a failed pull is not remembered as success or as a permanent failure).
  assertRegistryUnavailable(await call(fnName));

  await registry.start();
  const up = await call(fnName);
  assert.equal(up.status, 200, `after the registry came back: ${show(up)}`);
  assert.equal(up.start, 'cold');
  assert.deepEqual(up.json.received, { n: 1 });
});

test('a new version whose image the worker has not pulled: 503 naming the registry while it is down, then the new code serves once it is back', async () => {
  const warm = await call(fnName);
  assert.equal(warm.status, 200, show(warm));
  assert.equal(warm.start, 'warm');
  assert.equal(warm.json.v, undefined);

  // New code, so a new image (pushed while the registry is up) that no worker holds yet.
  const source = path.join(workdir, fnName, 'index.js');
  const code = await fs.readFile(source, 'utf8');
  await fs.writeFile(source, code.replace('method: request.method,', 'method: request.method,\n    v: 2,'));
  const res = await runCli(['deploy', fnName], { cwd: workdir, env: { ...stack.env, HEARTH_REGISTRY: registry.address } });
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /version 2/);

  await registry.stop();
  assertRegistryUnavailable(await call(fnName));

  await registry.start();
  const up = await call(fnName);
  assert.equal(up.status, 200, `after the registry came back: ${show(up)}`);
  assert.equal(up.start, 'cold');
  assert.equal(up.json.v, 2, 'the new version answered');
});
