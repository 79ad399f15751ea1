import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eq } from 'drizzle-orm';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ROOT_CONTEXT, SpanStatusCode, trace } from '@opentelemetry/api';
import { schema } from '@hearth/core/db';
import { PostgresSpanExporter } from '@hearth/core/telemetry';
import { createTestDatabase, uniquePrefix, type TestDatabase } from '../helpers/services.ts';

let db: TestDatabase;
before(async () => {
  db = await createTestDatabase(uniquePrefix('spans').replaceAll('-', '_'));
});
after(async () => {
  await db?.drop();
});

function tracerWith(exporter: PostgresSpanExporter) {
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'test-service' }), spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 60_000 })] });
  return { provider, tracer: provider.getTracer('test') };
}

test('spans land in the store with their parent, service, function, status and microsecond times', async () => {
  const { provider, tracer } = tracerWith(new PostgresSpanExporter(db.db));
  const t0 = Date.now() - 1000;
  const parent = tracer.startSpan('gateway.invoke', { startTime: t0, attributes: { 'faas.name': 'hello', 'faas.coldstart': true } }, ROOT_CONTEXT);
  const child = tracer.startSpan('image.pull', { startTime: t0 + 1.5 }, trace.setSpan(ROOT_CONTEXT, parent));
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'registry down' });
  child.end(t0 + 251.5);
  parent.end(t0 + 400);
  await provider.forceFlush();
  await provider.shutdown();

  const rows = await db.db.select().from(schema.spans).where(eq(schema.spans.traceId, parent.spanContext().traceId));
  const byName = new Map(rows.map((r) => [r.name, r]));
  const p = byName.get('gateway.invoke');
  const c = byName.get('image.pull');
  assert.ok(p && c, JSON.stringify(rows));
  assert.equal(p.parentSpanId, null);
  assert.equal(c.parentSpanId, p.spanId);
  assert.equal(p.service, 'test-service');
  assert.equal(p.functionName, 'hello');
  assert.equal(c.functionName, null, 'a span that does not name its function has none');
  assert.deepEqual(p.attributes, { 'faas.name': 'hello', 'faas.coldstart': true });
  assert.equal(p.startUs, t0 * 1000);
  assert.equal(p.durationUs, 400_000);
  assert.equal(c.startUs - p.startUs, 1500);
  assert.equal(c.durationUs, 250_000);
  assert.equal(c.statusCode, 2);
  assert.equal(c.statusMessage, 'registry down');
});

test('a store that cannot be written drops the batch, reports once and never throws into the traced code', async () => {
  const broken = await createTestDatabase(uniquePrefix('spans-down').replaceAll('-', '_'));
  await broken.drop(); // pool closed, database gone
  const errors: unknown[] = [];
  const { provider, tracer } = tracerWith(new PostgresSpanExporter(broken.db, (err) => errors.push(err)));
  for (let i = 0; i < 3; i++) tracer.startSpan(`call-${i}`).end();
  // The SDK tells whoever flushes that the export failed (setup.ts's flush and shutdown swallow it).
  await assert.rejects(provider.forceFlush());
  for (let i = 0; i < 2; i++) tracer.startSpan(`again-${i}`).end();
  await provider.forceFlush().catch(() => {});
  await provider.shutdown().catch(() => {});
  assert.equal(errors.length, 1, `one report per outage, got ${errors.length}`);
  assert.match((errors[0] as Error).message, /span store: dropped 3 spans/);
});
