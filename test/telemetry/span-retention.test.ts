import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { schema } from '@hearth/core/db';
import { startSpanRetention } from '../../apps/worker/src/span-retention.ts';
import { createTestDatabase, uniquePrefix, type TestDatabase } from '../helpers/services.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(uniquePrefix('retain').replaceAll('-', '_'));
});
after(async () => {
  await db?.drop();
});

test('spans older than the retention are deleted; newer ones stay', async () => {
  const dayUs = 86_400_000_000;
  const nowUs = Date.now() * 1000;
  const span = (spanId: string, startUs: number) => ({ traceId: 'a'.repeat(32), spanId, name: 'gateway.invoke', service: 'test', startUs, durationUs: 1000 });
  await db.db.insert(schema.spans).values([span('0000000000000001', nowUs - 8 * dayUs), span('0000000000000002', nowUs - 6 * dayUs), span('0000000000000003', nowUs)]);
  const errors: unknown[] = [];
  const stop = startSpanRetention(db.db, 7, (err) => errors.push(err));
  try {
    for (let i = 0; i < 50; i++) {
      const left = await db.db.select({ id: schema.spans.spanId }).from(schema.spans);
      if (left.length === 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const left = (await db.db.select({ id: schema.spans.spanId }).from(schema.spans)).map((r) => r.id).sort();
    assert.deepEqual(left, ['0000000000000002', '0000000000000003']);
    assert.deepEqual(errors, []);
  } finally {
    stop();
  }
});
