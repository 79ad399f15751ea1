import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { contextFromTraceparent, injectTraceparent } from './propagation.ts';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

test('a traceparent read into a context comes back out unchanged', () => {
  const ctx = contextFromTraceparent(TRACEPARENT);
  const sc = trace.getSpanContext(ctx);
  assert.equal(sc?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
  assert.equal(sc?.spanId, '00f067aa0ba902b7');
  assert.equal(sc?.isRemote, true);
  assert.equal(injectTraceparent(ctx), TRACEPARENT);
});

test('a missing or malformed traceparent starts a new trace instead of failing', () => {
  for (const value of [undefined, '', 'garbage', '00-00000000000000000000000000000000-00f067aa0ba902b7-01', '00-4bf92f3577b34da6a3ce929d0e0e4736-zzzz-01']) {
    const ctx = contextFromTraceparent(value);
    assert.equal(trace.getSpanContext(ctx), undefined, String(value));
    assert.equal(injectTraceparent(ctx), undefined, String(value));
  }
  assert.equal(injectTraceparent(ROOT_CONTEXT), undefined);
});
