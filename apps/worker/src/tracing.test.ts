import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hrTimeToMicroseconds } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { recordColdStartPhases, startTimingsOf } from './tracing.ts';

const exporter = new InMemorySpanExporter();
new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).register();

test('start timings come from a runc sandbox as they are and from a microVM mapped onto the same three phases', () => {
  assert.deepEqual(startTimingsOf({ startTimings: { prepareMs: 5, runcMs: 20, readyMs: 40 } }), { prepareMs: 5, runcMs: 20, readyMs: 40 });
  assert.deepEqual(startTimingsOf({ startTimings: { initramfsMs: 100, initramfsBuilt: true, accelMs: 3, qemuSpawnMs: 30, bootMs: 1500 } }), { prepareMs: 103, runcMs: 30, readyMs: 1500 });
  assert.equal(startTimingsOf({ startTimings: { prepareMs: 0, runcMs: 0, readyMs: 0 } }), undefined, 'a sandbox that never started');
  assert.equal(startTimingsOf({}), undefined);
  assert.equal(startTimingsOf(undefined), undefined);
});

test('the cold-start phases are recorded back to back, ending when the sandbox became ready', () => {
  exporter.reset();
  const readyAt = Date.now();
  recordColdStartPhases({ prepareMs: 5, runcMs: 20, readyMs: 40 }, { readyAt, instanceId: 'inst-1' });
  const spans = exporter.getFinishedSpans();
  assert.deepEqual(spans.map((s) => s.name), ['sandbox.create', 'sandbox.start', 'sandbox.ready']);
  const us = spans.map((s) => [hrTimeToMicroseconds(s.startTime), hrTimeToMicroseconds(s.endTime)]);
  assert.deepEqual(us.map(([a, b]) => Math.round((b! - a!) / 1000)), [5, 20, 40]);
  assert.equal(us[0]![1], us[1]![0]);
  assert.equal(us[1]![1], us[2]![0]);
  assert.equal(Math.round(us[2]![1]! / 1000), readyAt);
  assert.ok(spans.every((s) => s.attributes['faas.instance'] === 'inst-1'));
});
