// Postgres restarted under a running stack (a private cluster, never the shared one): sync
// calls keep working or fail with a clear 503 during the gap, work again afterwards without
// restarting the gateway or the worker, and the invocation records of calls made after the
// restart are all written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import pg from 'pg';
import { deleteRedisPrefix, uniquePrefix } from '../helpers/services.ts';
import { startStack, type TestStack } from '../helpers/stack.ts';
import { deleteImage, waitFor } from '../helpers/triggers.ts';
import { containers, deployFixture, privatePostgres, request, show, type Answer, type PrivateService } from './fault-kit.ts';

const prefix = uniquePrefix('fault-pg');
const fnName = `${prefix}-fn`;

let postgres: PrivateService;
let stack: TestStack;
let image = '';
let workdir = '';

before(async () => {
  postgres = await privatePostgres();
  stack = await startStack({ prefix, databaseUrl: postgres.address, env: { HEARTH_STEM_CELLS: '0' } });
  ({ image, workdir } = await deployFixture(stack, 'jobs', fnName));
});

after(async () => {
  if (process.env.HEARTH_TEST_DEBUG) console.log(stack?.gateway.output(), stack?.worker.output());
  await stack?.stopApps();
  if (image) await deleteImage(image);
  await postgres?.destroy();
  await deleteRedisPrefix(prefix);
  if (stack) {
    const left = await containers(prefix);
    await fs.rm(stack.home, { recursive: true, force: true });
    assert.deepEqual(left, []);
  }
  if (workdir) await fs.rm(workdir, { recursive: true, force: true });
});

const call = (key: string) => request(`${stack.gatewayUrl}/function/${fnName}/?key=${key}`);

/** Invocation rows of the function, by call id, read straight from the database. */
async function invocationIds(): Promise<Set<string>> {
  const client = new pg.Client({ connectionString: postgres.address });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>('SELECT id FROM invocations WHERE function_name = $1', [fnName]);
    return new Set(rows.map((r) => r.id));
  } finally {
    await client.end();
  }
}

/** Waits a few seconds for the records (written in batches a few ms after each call), then names the missing ones. */
async function assertRecorded(ids: string[], what: string): Promise<void> {
  let rows = new Set<string>();
  await waitFor(`the invocation records of ${what}`, async () => {
    rows = await invocationIds();
    return ids.every((id) => rows.has(id));
  }, 5000, 200).catch(() => undefined);
  const missing = ids.filter((id) => !rows.has(id));
  assert.deepEqual(missing, [], `${what}: ${missing.length} of ${ids.length} succeeded calls have no invocation record`);
}

/** A call during the outage: the function's answer, or a clear 503 JSON error. Never a 500 "internal error", never a hang. */
function assertAnsweredOrUnavailable(a: Answer, when: string): void {
  if (a.status === 200) return;
  assert.equal(a.status, 503, `${when}: a call answers 200 or a clear 503, got ${show(a)}`);
  assert.equal(typeof a.json?.error, 'string', `${when}: a JSON error: ${show(a)}`);
  assert.match(a.json.error, /database|postgres/i, `${when}: the error says the database is unavailable: ${a.json.error}`);
}

test('a warm function keeps answering (or answers a clear 503) while Postgres restarts, and answers again afterwards without restarts', async () => {
  const warm = await call('before');
  assert.equal(warm.status, 200, show(warm));

  await postgres.stop();
  const during: Answer[] = [];
  for (let i = 0; i < 3; i++) during.push(await call(`during-${i}`));
  await postgres.start();

  const after = await waitFor('a call to succeed after the restart', async () => {
    const a = await call('after');
    return a.status === 200 ? a : undefined;
  }, 15_000, 250);
  assert.equal(after.json.path, '/');
  // Neither app was restarted.
  assert.equal(stack.gateway.child.exitCode, null);
  assert.equal(stack.worker.child.exitCode, null);

  await assertRecorded([after.callId!], 'the first call that succeeded after the restart');

  // Checked last, so a failure here still shows that the stack recovered.
  for (const [i, a] of during.entries()) assertAnsweredOrUnavailable(a, `call ${i} while Postgres was down`);
});

test('every call that succeeded after a crash and restart of Postgres has its invocation record', async () => {
  // This time a crash (SIGKILL of the postmaster): the apps' pools hold connections that are dead now.
  await postgres.stop({ crash: true });
  await postgres.start();
  const first = await waitFor('a call to succeed after the crash', async () => {
    const a = await call('probe');
    return a.status === 200 ? a : undefined;
  }, 15_000, 250);
  const answers: Answer[] = [first];
  for (let i = 0; i < 10; i++) answers.push(await call(`rec-${i}`));
  for (const a of answers) assert.equal(a.status, 200, show(a));
  const ids = answers.map((a) => a.callId);
  assert.ok(ids.every(Boolean), 'every answer has X-Call-Id');

  await assertRecorded(ids as string[], 'the calls after the crash');
});
