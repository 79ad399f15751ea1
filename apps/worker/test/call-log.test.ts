// The worker's `calls` bookkeeping against a real Postgres: a succeeded call is final for
// its job, whatever a rerun (stalled worker, retry) later reports.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { eq } from 'drizzle-orm';
import { schema } from '@hearth/core/db';
import { createTestDatabase, uniquePrefix, type TestDatabase } from '../../../test/helpers/services.ts';
import { CallLog, type CallJobRef } from '../src/call-log.ts';

let db: TestDatabase | undefined;
after(() => db?.drop());

const ref = (over: Partial<CallJobRef> = {}): CallJobRef => ({
  id: 'orders:1',
  kind: 'queue',
  functionName: 'fn',
  version: 1,
  queue: 'orders',
  jobId: '1',
  jobTimestamp: 1000,
  payload: { name: 'job', data: { n: 1 } },
  ...over,
});

test('a succeeded call is never overwritten by a rerun of the same job, and a rerun may not start it again', async () => {
  db = await createTestDatabase(uniquePrefix('calllog').replaceAll('-', '_'));
  const calls = new CallLog(db.db);
  const row = async (id: string) => (await db!.db.select().from(schema.calls).where(eq(schema.calls.id, id)))[0]!;

  assert.equal(await calls.start(ref()), true);
  await calls.finish(ref(), { status: 'succeeded', attempts: 1, httpStatus: 200, result: { returnValue: 'first' } });
  assert.equal(await calls.start(ref()), false, 'a rerun of a succeeded job does not run');
  await calls.finish(ref(), { status: 'failed', attempts: 2, httpStatus: 500, error: 'late failure' });
  const after1 = await row('orders:1');
  assert.equal(after1.status, 'succeeded');
  assert.deepEqual(after1.result, { returnValue: 'first' });
  assert.equal(await calls.result('orders:1').then((r) => (r as { returnValue: string }).returnValue), 'first');

  // The same id with another timestamp is another job (the first was removed): it runs.
  assert.equal(await calls.start(ref({ jobTimestamp: 2000 })), true);
  const fresh = await row('orders:1');
  assert.equal(fresh.status, 'running');
  assert.equal(fresh.attempts, 1);
});

test('failed attempts are recorded and a later attempt of the same job may succeed', async () => {
  const calls = new CallLog(db!.db);
  const r = ref({ id: 'orders:2', jobId: '2' });
  await calls.finish(r, { status: 'queued', attempts: 1, httpStatus: 500, error: 'boom' });
  assert.equal(await calls.start(r), true);
  await calls.finish(r, { status: 'succeeded', attempts: 2, httpStatus: 200, result: { returnValue: 2 } });
  const [row] = await db!.db.select().from(schema.calls).where(eq(schema.calls.id, 'orders:2'));
  assert.equal(row!.status, 'succeeded');
  assert.equal(row!.attempts, 2);
  assert.equal(row!.error, null);
});
