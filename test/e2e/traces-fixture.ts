import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cleanupRegistry, createTestDatabase, deleteRedisPrefix, testEnv, uniquePrefix, type TestDatabase } from '../helpers/services.ts';
import { REPO_ROOT, runCli, startStack, type TestStack } from '../helpers/stack.ts';
import type { TraceInfo, TraceSpan } from '@hearth/core';

/** A span and a trace as /system/traces answers them: the contract in @hearth/core. */
export type SpanJson = TraceSpan;
export type TraceJson = TraceInfo;

export const COLD_PHASES = ['image.pull', 'image.unpack', 'sandbox.create', 'sandbox.start', 'sandbox.ready'];

/**
 * A stack of its own (test database, queue and instance prefixes) with the echo fixture
 * deployed under a test-specific name. Stem cells are off, so a first call is a true cold
 * start (pull, unpack, sandbox start).
 */
export interface TracedEcho {
  prefix: string;
  db: TestDatabase;
  stack: TestStack;
  fnName: string;
  workdir: string;
  call(sub?: string, init?: RequestInit): Promise<Response>;
  /** GET /system/... with the stack's key. */
  system<T>(pathAndQuery: string): Promise<T>;
  /** Polls the span store until a trace matches (exporters batch for about a second). */
  waitForTrace(match: (t: TraceJson) => boolean, timeoutMs?: number): Promise<TraceJson>;
  cleanup(): Promise<void>;
}

export async function startTracedEcho(name: string, env: NodeJS.ProcessEnv = {}, specExtra = ''): Promise<TracedEcho> {
  const prefix = uniquePrefix(name);
  const fnName = `${prefix}-echo`;
  const db = await createTestDatabase(prefix.replaceAll('-', '_'));
  let stack: TestStack | undefined;
  let workdir: string | undefined;
  let pushedRef: string | undefined;
  const cleanup = async () => {
    if (process.env.HEARTH_TEST_DEBUG) console.log(stack?.gateway.output(), stack?.worker.output());
    await stack?.stopApps();
    await cleanupRegistry(`fn/${prefix}`, pushedRef ? [pushedRef] : []).catch(() => {});
    await deleteRedisPrefix(prefix).catch(() => {});
    await db.drop();
    if (stack) await fs.rm(stack.home, { recursive: true, force: true });
    if (workdir) await fs.rm(workdir, { recursive: true, force: true });
  };
  try {
    stack = await startStack({ prefix, databaseUrl: db.url, env: { HEARTH_STEM_CELLS: '0', ...env } });
    workdir = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-src-`));
    const dir = path.join(workdir, fnName);
    await fs.cp(path.join(REPO_ROOT, 'test/fixtures/functions/echo'), dir, { recursive: true });
    const yaml = await fs.readFile(path.join(dir, 'hearth.yaml'), 'utf8');
    await fs.writeFile(path.join(dir, 'hearth.yaml'), `${yaml.replace('name: echo', `name: ${fnName}`)}\n${specExtra}\n`);
    const res = await runCli(['deploy', fnName], { cwd: workdir, env: { ...stack.env, HEARTH_REGISTRY: testEnv().registry } });
    assert.equal(res.code, 0, res.stderr);
    pushedRef = res.stdout.split('\n').map((l) => l.trim()).find((l) => /@sha256:[a-f0-9]{64}$/.test(l));
  } catch (err) {
    await cleanup();
    throw err;
  }
  const s = stack;
  const system = async <T>(pathAndQuery: string): Promise<T> => {
    const res = await fetch(`${s.gatewayUrl}${pathAndQuery}`, { headers: s.authHeaders });
    assert.equal(res.status, 200, `GET ${pathAndQuery}: ${res.status} ${await res.clone().text()}`);
    return (await res.json()) as T;
  };
  return {
    prefix,
    db,
    stack: s,
    fnName,
    workdir: workdir!,
    call: (sub = '/', init) => fetch(`${s.gatewayUrl}/function/${fnName}${sub}`, init),
    system,
    async waitForTrace(match, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      let last: TraceJson[] = [];
      while (Date.now() < deadline) {
        last = await system<TraceJson[]>(`/system/traces?function=${fnName}&limit=50`);
        const found = last.find(match);
        if (found) return found;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.fail(`no matching trace within ${timeoutMs} ms; the store has:\n${JSON.stringify(last.map((t) => t.spans.map((sp) => sp.name)), null, 1)}`);
    },
    cleanup,
  };
}

/** The trace holds these spans (by name), each exactly once. */
export function spansByName(trace: TraceJson, names: string[]): Record<string, SpanJson> {
  const out: Record<string, SpanJson> = {};
  for (const name of names) {
    const found = trace.spans.filter((s) => s.name === name);
    assert.equal(found.length, 1, `trace ${trace.traceId} has ${found.length} "${name}" spans: ${trace.spans.map((s) => s.name).join(', ')}`);
    out[name] = found[0]!;
  }
  return out;
}

/** The trace has every span the call needs: the worker's last one and the gateway's. */
export const complete = (names: string[]) => (t: TraceJson) => names.every((n) => t.spans.some((s) => s.name === n));
