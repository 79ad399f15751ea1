/**
 * Behaviour every Sandbox implementation owes a function (runc container now, qemu microVM
 * later): the invoke protocol, the handler contract, errors, timeouts, isolation, limits.
 * A driver's test file calls sandboxSuite() with a factory and its own "nothing left" check.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Sandbox } from '@hearth/runtime';
import { baseRootfs, functionImageConfig, functionLayer, get, rejectsWith, scratchHome, testPrefix } from './fixtures.ts';

export interface SuiteContext {
  home: string;
  id: string;
  layers: string[];
  imageConfig: ReturnType<typeof functionImageConfig>;
  limits: { memoryMb: number; cpu: number; pids?: number };
  env?: Record<string, string>;
  logPath: string;
  readyTimeoutMs?: number;
}

export interface SandboxDriver {
  name: string;
  create(ctx: SuiteContext): Sandbox;
  /** Lists what the instance left behind after stop(): empty means clean. */
  leftovers(home: string, id: string): Promise<string[]>;
  cleanup(home: string, prefix: string): Promise<unknown>;
  /** How long the driver takes to boot before the function's process runs (a microVM under TCG: seconds); default 0. */
  bootMs?: number;
}

/** A handler that exercises the contract; each path is one behaviour. */
const HANDLER = `
import fs from 'node:fs';
import os from 'node:os';

export default async (request, ctx) => {
  const url = new URL(request.url);
  switch (url.pathname) {
    case '/json': return { hello: 'world', n: 1 };
    case '/text': return 'plain text';
    case '/bytes': return new Uint8Array([1, 2, 3]);
    case '/empty': return undefined;
    case '/custom':
      return new Response('short and stout', { status: 418, headers: { 'x-custom': 'yes', 'content-type': 'text/x-tea' } });
    case '/throw': throw new Error('handler exploded on purpose');
    case '/hang': return new Promise(() => {});
    case '/alloc': {
      const keep = [];
      for (let i = 0; i < Number(url.searchParams.get('mb')); i++) keep.push(Buffer.alloc(1 << 20, 1));
      return { allocated: keep.length };
    }
    case '/inside': {
      const status = fs.readFileSync('/proc/self/status', 'utf8');
      const field = (name) => status.match(new RegExp('^' + name + ':\\\\s*(.*)$', 'm'))[1].trim();
      const attempt = (fn) => { try { fn(); return 'ok'; } catch (err) { return err.code; } };
      return {
        pid: process.pid,
        uid: process.getuid(),
        root: fs.readdirSync('/').sort(),
        capEff: field('CapEff'),
        capBnd: field('CapBnd'),
        noNewPrivs: field('NoNewPrivs'),
        seccomp: field('Seccomp'),
        interfaces: Object.keys(os.networkInterfaces()).sort(),
        hostFile: attempt(() => fs.readFileSync(url.searchParams.get('hostFile'))),
        writeEtc: attempt(() => fs.writeFileSync('/etc/hearth-test', 'x')),
        writeTmp: attempt(() => fs.writeFileSync('/tmp/hearth-test', 'x')),
        env: { HEARTH_SOCKET: process.env.HEARTH_SOCKET, GREETING: process.env.GREETING },
      };
    }
    default:
      return {
        method: request.method,
        path: url.pathname,
        query: url.search,
        headers: Object.fromEntries(request.headers),
        body: await request.text(),
        ctx: { invocationId: ctx.invocationId, traceparent: ctx.traceparent },
      };
  }
};
`;

const json = (b: Buffer) => JSON.parse(b.toString('utf8'));


export function sandboxSuite(driver: SandboxDriver): void {
  let home: string;
  let prefix: string;
  let layers: string[];
  let n = 0;
  const started: Sandbox[] = [];

  const make = (over: Partial<SuiteContext> = {}): { sandbox: Sandbox; ctx: SuiteContext } => {
    const id = `${prefix}${++n}`;
    const ctx: SuiteContext = {
      home,
      id,
      layers,
      imageConfig: functionImageConfig('node', 'index.js'),
      limits: { memoryMb: 128, cpu: 1 },
      logPath: path.join(home, 'logs', `${id}.log`),
      ...over,
    };
    const sandbox = driver.create(ctx);
    started.push(sandbox);
    return { sandbox, ctx };
  };

  before(async () => {
    home = await scratchHome();
    prefix = testPrefix();
    layers = [await baseRootfs('node'), await functionLayer(home, 'fn', { 'index.js': HANDLER })];
  });

  after(async () => {
    await Promise.allSettled(started.map((s) => s.stop()));
    await driver.cleanup(home, prefix);
    await fs.rm(home, { recursive: true, force: true });
  });

  test(`${driver.name}: serves the handler's answers (JSON, text, bytes, 204, custom status and headers)`, async () => {
    const { sandbox } = make();
    await sandbox.start();
    const opts = { timeoutMs: 5000 };

    const a = await sandbox.invoke(get('/json'), opts);
    assert.equal(a.status, 200);
    assert.match(a.headers['content-type'] ?? '', /^application\/json/);
    assert.deepEqual(json(a.body), { hello: 'world', n: 1 });

    const b = await sandbox.invoke(get('/text'), opts);
    assert.equal(b.status, 200);
    assert.match(b.headers['content-type'] ?? '', /^text\/plain/);
    assert.equal(b.body.toString(), 'plain text');

    const c = await sandbox.invoke(get('/bytes'), opts);
    assert.equal(c.headers['content-type'], 'application/octet-stream');
    assert.deepEqual([...c.body], [1, 2, 3]);

    const d = await sandbox.invoke(get('/empty'), opts);
    assert.equal(d.status, 204);
    assert.equal(d.body.length, 0);

    const e = await sandbox.invoke(get('/custom'), opts);
    assert.equal(e.status, 418);
    assert.equal(e.headers['x-custom'], 'yes');
    assert.equal(e.headers['content-type'], 'text/x-tea');
    assert.equal(e.body.toString(), 'short and stout');
    await sandbox.stop();
  });

  test(`${driver.name}: method, sub-path, query, headers, body and trace context reach the handler`, async () => {
    const { sandbox } = make();
    await sandbox.start();
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const res = await sandbox.invoke(
      {
        method: 'PUT',
        path: '/orders/42',
        query: 'expand=items&x=%20y',
        headers: { 'content-type': 'text/plain', 'x-call-id': 'call-123', 'x-thing': 'abc', connection: 'close' },
        body: Buffer.from('the body ✓'),
      },
      { timeoutMs: 5000, traceparent },
    );
    assert.equal(res.status, 200);
    const seen = json(res.body);
    assert.equal(seen.method, 'PUT');
    assert.equal(seen.path, '/orders/42');
    assert.equal(seen.query, '?expand=items&x=%20y');
    assert.equal(seen.headers['x-thing'], 'abc');
    assert.equal(seen.headers['content-type'], 'text/plain');
    assert.equal(seen.body, 'the body ✓');
    assert.deepEqual(seen.ctx, { invocationId: 'call-123', traceparent });
    await sandbox.stop();
  });

  test(`${driver.name}: a throwing handler answers 500 with its message, and the stack goes to the log`, async () => {
    const { sandbox, ctx } = make();
    await sandbox.start();
    const res = await sandbox.invoke(get('/throw'), { timeoutMs: 5000 });
    assert.equal(res.status, 500);
    assert.deepEqual(json(res.body), { error: 'handler exploded on purpose' });
    // the instance keeps serving
    assert.equal((await sandbox.invoke(get('/text'), { timeoutMs: 5000 })).status, 200);
    await sandbox.stop();
    assert.match(await fs.readFile(ctx.logPath, 'utf8'), /Error: handler exploded on purpose\n\s+at /);
  });

  test(`${driver.name}: a handler that never answers times out at the deadline; stop() leaves nothing`, async () => {
    const { sandbox, ctx } = make();
    await sandbox.start();
    const t0 = performance.now();
    await rejectsWith(sandbox.invoke(get('/hang'), { timeoutMs: 300 }), 'TIMEOUT');
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 290 && elapsed < 1500, `timed out after ${elapsed.toFixed(0)} ms`);
    await sandbox.stop();
    await sandbox.stop(); // twice is fine
    assert.deepEqual(await driver.leftovers(home, ctx.id), []);
  });

  test(`${driver.name}: the function is isolated (own pid 1, no capabilities, loopback only, no host files, read-only root)`, async () => {
    const hostFile = path.join(home, `host-secret-${Date.now()}`);
    await fs.writeFile(hostFile, 'host only');
    const { sandbox } = make({ env: { GREETING: 'hi' } });
    await sandbox.start();
    const res = await sandbox.invoke(get('/inside', `hostFile=${encodeURIComponent(hostFile)}`), { timeoutMs: 5000 });
    assert.equal(res.status, 200, res.body.toString());
    const inside = json(res.body);
    assert.equal(inside.pid, 1);
    assert.equal(inside.capEff, '0000000000000000');
    assert.equal(inside.capBnd, '0000000000000000');
    assert.equal(inside.noNewPrivs, '1');
    assert.equal(inside.seccomp, '2'); // a filter is installed
    assert.deepEqual(inside.interfaces, ['lo']);
    assert.equal(inside.hostFile, 'ENOENT');
    assert.ok(!inside.root.includes(path.basename(home)) && inside.root.includes('function'), inside.root.join(' '));
    assert.equal(inside.writeEtc, 'EROFS');
    assert.equal(inside.writeTmp, 'ok');
    assert.deepEqual(inside.env, { HEARTH_SOCKET: '/run/hearth/invoke.sock', GREETING: 'hi' });
    await sandbox.stop();
  });

  test(`${driver.name}: the memory limit is enforced (64 MB limit, 200 MB allocation kills the instance)`, async () => {
    const { sandbox, ctx } = make({ limits: { memoryMb: 64, cpu: 1 } });
    await sandbox.start();
    // well under the limit works
    assert.equal((await sandbox.invoke(get('/alloc', 'mb=8'), { timeoutMs: 5000 })).status, 200);
    const err = await rejectsWith(sandbox.invoke(get('/alloc', 'mb=200'), { timeoutMs: 10_000 }), 'UNAVAILABLE');
    assert.match(err.message, /instance died/);
    assert.match(err.message, /out of memory/);
    await sandbox.stop();
    assert.deepEqual(await driver.leftovers(home, ctx.id), []);
  });

  test(`${driver.name}: a handler that fails to load fails start() with the log's tail, and leaves nothing`, async () => {
    const broken = await functionLayer(home, 'broken', { 'index.js': 'throw new Error("cannot even load: missing CONFIG");\n' });
    const { sandbox, ctx } = make({ layers: [layers[0]!, broken] });
    const err = await rejectsWith(sandbox.start(), 'UNAVAILABLE');
    assert.match(err.message, /^function failed to start:/);
    assert.match(err.message, /cannot even load: missing CONFIG/);
    await sandbox.stop(); // safe after a failed start
    assert.deepEqual(await driver.leftovers(home, ctx.id), []);
  });

  test(`${driver.name}: a process that never listens fails start() after readyTimeoutMs`, async () => {
    const { sandbox, ctx } = make({
      imageConfig: { ...functionImageConfig('node', 'index.js'), Cmd: ['/usr/bin/node', '-e', 'console.log("not a server"); setInterval(() => {}, 1000)'] },
      readyTimeoutMs: 1500 + (driver.bootMs ?? 0),
    });
    const t0 = performance.now();
    const err = await rejectsWith(sandbox.start(), 'UNAVAILABLE');
    assert.ok(performance.now() - t0 < 5000 + (driver.bootMs ?? 0));
    assert.match(err.message, /not a server/);
    assert.deepEqual(await driver.leftovers(home, ctx.id), []);
  });
}
