import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import { freePort } from '../helpers/stack.ts';
import { COLD_PHASES, complete, startTracedEcho, type TracedEcho } from './traces-fixture.ts';

/** What an OTLP/HTTP JSON export carries, as far as this test reads it. */
interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number };
}
interface OtlpExport {
  resourceSpans: { resource: { attributes: OtlpAttribute[] }; scopeSpans: { spans: { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes: OtlpAttribute[] }[] }[] }[];
}
interface Received {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Record<string, unknown>;
}

const attrs = (list: OtlpAttribute[]) => Object.fromEntries(list.map((a) => [a.key, a.value.stringValue ?? a.value.boolValue ?? a.value.intValue ?? a.value.doubleValue]));

/** A small OTLP/HTTP receiver on loopback: it records every span POSTed to /v1/traces. */
function startReceiver(port: number) {
  const spans: Received[] = [];
  const requests: { path: string; contentType: string }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ path: req.url ?? '', contentType: req.headers['content-type'] ?? '' });
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport;
      for (const rs of body.resourceSpans) {
        const service = String(attrs(rs.resource.attributes)['service.name']);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) spans.push({ service, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', name: s.name, attributes: attrs(s.attributes) });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.listen(port, '127.0.0.1');
  return { spans, requests, server };
}

let env: TracedEcho;
let receiver: ReturnType<typeof startReceiver>;

before(async () => {
  const port = await freePort();
  receiver = startReceiver(port);
  await once(receiver.server, 'listening');
  env = await startTracedEcho('otlp', { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` });
});
after(async () => {
  await env?.cleanup();
  if (receiver?.server.listening) {
    receiver.server.close();
    receiver.server.closeAllConnections();
  }
});

test('with OTEL_EXPORTER_OTLP_ENDPOINT set, both apps export the call\'s spans over OTLP/HTTP as well as to the span store', async () => {
  const res = await env.call('/');
  assert.equal(res.status, 200);
  const callId = res.headers.get('x-call-id');
  const stored = await env.waitForTrace((t) => t.spans.some((s) => s.attributes['faas.invocation_id'] === callId) && complete(['gateway.invoke', 'queue.wait', 'worker.invoke', 'pool.acquire', 'function.invoke', ...COLD_PHASES])(t));

  const deadline = Date.now() + 15_000;
  let got: Received[] = [];
  while (Date.now() < deadline) {
    got = receiver.spans.filter((s) => s.traceId === stored.traceId);
    if (got.length >= stored.spans.length) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual(got.map((s) => s.spanId).sort(), stored.spans.map((s) => s.spanId).sort(), 'OTLP got the same spans as the store');
  assert.ok(receiver.requests.every((r) => r.path === '/v1/traces' && /application\/json/.test(r.contentType)), JSON.stringify(receiver.requests));
  const byName = new Map(got.map((s) => [s.name, s]));
  assert.equal(byName.get('gateway.invoke')?.service, 'hearth-gateway');
  assert.equal(byName.get('worker.invoke')?.service, 'hearth-worker');
  assert.equal(byName.get('worker.invoke')?.parentSpanId, byName.get('gateway.invoke')?.spanId);
  assert.equal(byName.get('worker.invoke')?.attributes['faas.name'], env.fnName);
  assert.equal(byName.get('worker.invoke')?.attributes['hearth.start'], 'cold');
  assert.equal(byName.get('gateway.invoke')?.attributes['faas.invocation_id'], callId);
});

test('calls still work and reach the span store while the OTLP receiver is down', async () => {
  receiver.server.close();
  receiver.server.closeAllConnections();
  await once(receiver.server, 'close');
  const res = await env.call('/down');
  assert.equal(res.status, 200);
  const callId = res.headers.get('x-call-id');
  await env.waitForTrace((t) => t.spans.some((s) => s.name === 'worker.invoke' && s.attributes['faas.invocation_id'] === callId));
});
