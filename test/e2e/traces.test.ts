import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { runCli } from '../helpers/stack.ts';
import { COLD_PHASES, complete, spansByName, startTracedEcho, type SpanJson, type TraceJson, type TracedEcho } from './traces-fixture.ts';

let env: TracedEcho;
let coldTrace: TraceJson;
let warmTrace: TraceJson;

before(async () => {
  env = await startTracedEcho('traces');
});
after(async () => {
  await env?.cleanup();
});

const WORKER_SPANS = ['gateway.invoke', 'queue.wait', 'worker.invoke', 'pool.acquire', 'function.invoke'];
/** Clocks are read in different processes (ms resolution at the gateway): allow 2 ms of slack. */
const SLACK_US = 2000;
const end = (s: SpanJson) => s.startUs + s.durationUs;

function assertWithin(child: SpanJson, parent: SpanJson) {
  assert.ok(child.startUs >= parent.startUs - SLACK_US, `${child.name} starts ${parent.startUs - child.startUs} us before its parent ${parent.name}`);
  assert.ok(end(child) <= end(parent) + SLACK_US, `${child.name} ends ${end(child) - end(parent)} us after its parent ${parent.name}`);
}

test('a cold call yields one trace with every phase, parented under the caller\'s span', async (t) => {
  const callerTrace = randomBytes(16).toString('hex');
  const callerSpan = randomBytes(8).toString('hex');
  const res = await env.call('/', { headers: { traceparent: `00-${callerTrace}-${callerSpan}-01` } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-hearth-start'), 'cold');
  const callId = res.headers.get('x-call-id');
  const seen = (await res.json()) as { headers: Record<string, string> };

  coldTrace = await env.waitForTrace((tr) => tr.traceId === callerTrace && complete([...WORKER_SPANS, ...COLD_PHASES])(tr));
  const s = spansByName(coldTrace, [...WORKER_SPANS, ...COLD_PHASES]);
  assert.equal(coldTrace.spans.length, WORKER_SPANS.length + COLD_PHASES.length, coldTrace.spans.map((x) => x.name).join(', '));
  assert.equal(coldTrace.functionName, env.fnName);
  assert.equal(coldTrace.start, 'cold');

  // Parents: the caller's span → gateway → (queue.wait, worker) → (pool.acquire → phases, function.invoke).
  assert.equal(s['gateway.invoke']!.parentSpanId, callerSpan);
  for (const name of ['queue.wait', 'worker.invoke']) assert.equal(s[name]!.parentSpanId, s['gateway.invoke']!.spanId, name);
  for (const name of ['pool.acquire', 'function.invoke']) assert.equal(s[name]!.parentSpanId, s['worker.invoke']!.spanId, name);
  for (const name of COLD_PHASES) assert.equal(s[name]!.parentSpanId, s['pool.acquire']!.spanId, name);
  assert.equal(s['gateway.invoke']!.service, 'hearth-gateway');
  assert.equal(s['function.invoke']!.service, 'hearth-worker');

  // DESIGN's attributes.
  const gw = s['gateway.invoke']!.attributes;
  assert.equal(gw['faas.name'], env.fnName);
  assert.equal(gw['faas.trigger'], 'http');
  assert.equal(gw['faas.invocation_id'], callId);
  assert.equal(gw['faas.coldstart'], true);
  const wk = s['worker.invoke']!.attributes;
  assert.equal(wk['faas.name'], env.fnName);
  assert.equal(wk['faas.version'], '1');
  assert.equal(wk['faas.invocation_id'], callId);
  assert.equal(wk['faas.coldstart'], true);
  assert.equal(wk['hearth.start'], 'cold');
  assert.equal(wk['hearth.isolation'], 'container');
  assert.equal(wk['faas.max_memory'], 128 * 1024 * 1024);
  assert.match(String(wk['faas.instance']), new RegExp(`^${env.prefix}-`));
  assert.equal(s['function.invoke']!.attributes['faas.instance'], wk['faas.instance']);

  // The handler got the context of function.invoke, so its own spans would join this trace.
  assert.equal(seen.headers.traceparent, `00-${callerTrace}-${s['function.invoke']!.spanId}-01`);

  // Times: children inside their parents, the cold-start phases one after another.
  for (const name of ['queue.wait', 'worker.invoke']) assertWithin(s[name]!, s['gateway.invoke']!);
  for (const name of ['pool.acquire', 'function.invoke']) assertWithin(s[name]!, s['worker.invoke']!);
  for (const name of COLD_PHASES) assertWithin(s[name]!, s['pool.acquire']!);
  for (let i = 1; i < COLD_PHASES.length; i++) {
    assert.ok(s[COLD_PHASES[i]!]!.startUs >= end(s[COLD_PHASES[i - 1]!]!) - SLACK_US, `${COLD_PHASES[i]} starts before ${COLD_PHASES[i - 1]} ends`);
  }
  assert.ok(s['function.invoke']!.startUs >= end(s['pool.acquire']!) - SLACK_US, 'function.invoke starts before pool.acquire ends');
  assert.ok(s['worker.invoke']!.startUs >= end(s['queue.wait']!) - SLACK_US, 'worker.invoke starts before queue.wait ends');

  // What the breakdown accounts for (reported, not asserted: timings are noisy on a shared machine).
  const ms = (us: number) => (us / 1000).toFixed(1);
  const total = s['gateway.invoke']!.durationUs;
  const top = s['queue.wait']!.durationUs + s['worker.invoke']!.durationUs;
  const phases = COLD_PHASES.reduce((sum, n) => sum + s[n]!.durationUs, 0);
  t.diagnostic(`cold: gateway.invoke ${ms(total)} ms = queue.wait ${ms(s['queue.wait']!.durationUs)} + worker.invoke ${ms(s['worker.invoke']!.durationUs)} (${((top / total) * 100).toFixed(1)}%)`);
  t.diagnostic(`cold: pool.acquire ${ms(s['pool.acquire']!.durationUs)} ms, phases ${COLD_PHASES.map((n) => `${n} ${ms(s[n]!.durationUs)}`).join(', ')} = ${ms(phases)} ms (${((phases / s['pool.acquire']!.durationUs) * 100).toFixed(1)}%)`);
  t.diagnostic(`cold: function.invoke ${ms(s['function.invoke']!.durationUs)} ms; covered ${(((s['queue.wait']!.durationUs + s['pool.acquire']!.durationUs + s['function.invoke']!.durationUs) / total) * 100).toFixed(1)}% of the total`);
});

test('a warm call yields the same chain without cold-start phases', async () => {
  const res = await env.call('/again');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-hearth-start'), 'warm');
  const callId = res.headers.get('x-call-id');
  warmTrace = await env.waitForTrace((tr) => tr.spans.some((s) => s.attributes['faas.invocation_id'] === callId && s.name === 'worker.invoke') && complete(WORKER_SPANS)(tr));
  const s = spansByName(warmTrace, WORKER_SPANS);
  assert.notEqual(warmTrace.traceId, coldTrace.traceId);
  assert.deepEqual(warmTrace.spans.filter((x) => COLD_PHASES.includes(x.name)), []);
  assert.equal(warmTrace.start, 'warm');
  assert.equal(s['gateway.invoke']!.parentSpanId, null, 'a call without a traceparent starts a trace');
  assert.equal(s['worker.invoke']!.attributes['faas.coldstart'], false);
  assert.equal(s['gateway.invoke']!.attributes['faas.coldstart'], false);
  assert.equal(s['worker.invoke']!.attributes['faas.instance'], coldTrace.spans.find((x) => x.name === 'worker.invoke')!.attributes['faas.instance']);
});

test('an async call is one trace too: the gateway span ends at the 202, the worker\'s spans hang below it', async () => {
  const res = await fetch(`${env.stack.gatewayUrl}/async-function/${env.fnName}`, { method: 'POST', body: 'later' });
  assert.equal(res.status, 202);
  const callId = res.headers.get('x-call-id');
  const trace = await env.waitForTrace((tr) => tr.spans.some((s) => s.name === 'gateway.invoke' && s.attributes['faas.invocation_id'] === callId) && complete(WORKER_SPANS)(tr));
  const s = spansByName(trace, WORKER_SPANS);
  assert.equal(s['gateway.invoke']!.attributes['hearth.invoke.mode'], 'async');
  assert.equal(s['worker.invoke']!.parentSpanId, s['gateway.invoke']!.spanId);
  assert.equal(s['queue.wait']!.parentSpanId, s['gateway.invoke']!.spanId);
  assert.equal(s['worker.invoke']!.attributes['faas.invocation_id'], callId);
});

test('GET /system/traces/:id answers one trace; unknown, malformed and keyless requests are refused', async () => {
  const one = await env.system<TraceJson>(`/system/traces/${coldTrace.traceId}`);
  assert.equal(one.traceId, coldTrace.traceId);
  assert.deepEqual(one.spans.map((s) => s.name), coldTrace.spans.map((s) => s.name));
  // Waterfall order: every span after its parent.
  one.spans.forEach((s, i) => {
    if (s.depth > 0) assert.ok(one.spans.slice(0, i).some((p) => p.spanId === s.parentSpanId), `${s.name} comes before its parent`);
  });
  const missing = await fetch(`${env.stack.gatewayUrl}/system/traces/${'0'.repeat(31)}1`, { headers: env.stack.authHeaders });
  assert.equal(missing.status, 404);
  const bad = await fetch(`${env.stack.gatewayUrl}/system/traces/not-a-trace`, { headers: env.stack.authHeaders });
  assert.equal(bad.status, 400);
  const keyless = await fetch(`${env.stack.gatewayUrl}/system/traces?function=${env.fnName}`);
  assert.equal(keyless.status, 401);
});

test('GET /system/traces/startup compares cold and warm calls phase by phase', async () => {
  const groups = await env.system<{ start: string; isolation: string; count: number; phasesMs: Record<string, number>; totalMs: number }[]>(`/system/traces/startup?function=${env.fnName}`);
  const cold = groups.find((g) => g.start === 'cold');
  const warm = groups.find((g) => g.start === 'warm');
  assert.ok(cold && warm, JSON.stringify(groups));
  for (const phase of COLD_PHASES) assert.ok(phase in cold.phasesMs, `cold group lacks ${phase}`);
  for (const phase of COLD_PHASES) assert.ok(!(phase in warm.phasesMs), `warm group has ${phase}`);
  assert.ok('function.invoke' in warm.phasesMs);
});

test('hearth traces NAME prints the last calls as waterfalls; --json gives the spans', async () => {
  const text = await runCli(['traces', env.fnName, '--limit', '3'], { cwd: env.workdir, env: env.stack.env });
  assert.equal(text.code, 0, text.stderr);
  for (const name of [...WORKER_SPANS, ...COLD_PHASES]) assert.match(text.stdout, new RegExp(`^\\s*${name.replace('.', '\\.')}\\s+\\+\\d+\\.\\d ms\\s+\\d+\\.\\d ms\\s+\\|`, 'm'));
  assert.match(text.stdout, new RegExp(`trace ${coldTrace.traceId}`));
  assert.match(text.stdout, new RegExp(`trace ${warmTrace.traceId}`));

  const json = await runCli(['traces', env.fnName, '--limit', '2', '--json'], { cwd: env.workdir, env: env.stack.env });
  assert.equal(json.code, 0, json.stderr);
  const traces = JSON.parse(json.stdout) as TraceJson[];
  assert.equal(traces.length, 2);
  assert.ok(traces.every((t) => t.functionName === env.fnName && t.spans.length > 0));

  const missing = await runCli(['traces', 'no-such-fn-here'], { cwd: env.workdir, env: env.stack.env });
  assert.equal(missing.code, 0);
  assert.match(missing.stderr, /No traces of "no-such-fn-here"/);
});
