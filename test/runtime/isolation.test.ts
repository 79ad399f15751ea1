/**
 * What a function cannot do to the host or to other functions, tried from inside as a
 * user's handler would: namespaces, capabilities, files, network, read-only root, memory
 * and pids limits, seccomp. Also the exec runtime, and what stop() and cleanupInstances()
 * leave behind. Base layers are pulled from the dev registry (hearth/node, hearth/exec).
 * Needs root, runc and the registry. Run: cd /work/main && node --import tsx --test test/runtime/isolation.test.ts
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { cleanupInstances, instancePaths, type RuncSandbox, type SandboxOptions } from '@hearth/runtime';
import { uniquePrefix } from '../helpers/services.ts';
import {
  codeLayer, get, isRunning, leftovers, leftoversWithPrefix, mountsMentioning, nodeCode, post, prefixedHome, processesOf, pullBase, rejectsWith, runcIds,
  trackedSandbox, type PulledBase,
} from './fixtures.ts';

/** Probes run by a node function (String.raw: the backslashes are the handler's own). */
const PROBE = String.raw`
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';

const attempt = (fn) => { try { fn(); return 'ok'; } catch (err) { return err.code || String(err); } };
const connect = (port) => new Promise((resolve) => {
  const sock = net.connect({ host: '127.0.0.1', port });
  const timer = setTimeout(() => { sock.destroy(); resolve('no answer'); }, 2000);
  sock.once('connect', () => { clearTimeout(timer); sock.destroy(); resolve('connected'); });
  sock.once('error', (err) => { clearTimeout(timer); resolve(err.code); });
});

export default async (request) => {
  const url = new URL(request.url);
  const q = url.searchParams;
  switch (url.pathname) {
    case '/inside': {
      const status = Object.fromEntries(
        fs.readFileSync('/proc/self/status', 'utf8').split('\n').filter(Boolean).map((l) => l.split(/:\s*/, 2)),
      );
      return {
        pid: process.pid,
        hostFiles: Object.fromEntries(q.getAll('host').map((p) => [p, fs.existsSync(p)])),
        capEff: status.CapEff, capPrm: status.CapPrm, capBnd: status.CapBnd, capInh: status.CapInh, capAmb: status.CapAmb,
        noNewPrivs: status.NoNewPrivs,
        seccomp: status.Seccomp,
        interfaces: Object.keys(os.networkInterfaces()).sort(),
        hostPort: await connect(Number(q.get('port'))),
        writeEtc: attempt(() => fs.writeFileSync('/etc/x', 'x')),
        writeRoot: attempt(() => fs.writeFileSync('/hearth-x', 'x')),
        writeFunction: attempt(() => fs.writeFileSync('/function/index.js', 'overwritten')),
        writeTmp: attempt(() => { fs.writeFileSync('/tmp/x', 'scratch'); if (fs.readFileSync('/tmp/x', 'utf8') !== 'scratch') throw new Error('read back'); }),
      };
    }
    case '/alloc': {
      const keep = [];
      for (let i = 0; i < Number(q.get('mb')); i++) keep.push(Buffer.alloc(1 << 20, i % 255 + 1));
      return { allocated: keep.length };
    }
    default:
      return 'alive';
  }
};
`;

/** An exec function (busybox sh): one behaviour per path. */
const EXEC_HANDLER = `#!/bin/sh
case "$HTTP_PATH" in
  /upper) tr a-z A-Z ;;
  /fail) echo "refusing order $HTTP_QUERY" >&2; exit 3 ;;
  /unshare)
    if unshare -r true 2>/tmp/err; then echo "unshare worked"; else echo "unshare failed: $(cat /tmp/err)"; fi ;;
  /mount)
    mkdir -p /tmp/m
    if mount -t tmpfs x /tmp/m 2>/tmp/err; then echo "mount worked"; else echo "mount failed: $(cat /tmp/err)"; fi ;;
  /bomb)
    # Starts up to 500 sleepers in a child shell; ash exits at the first fork that fails, and
    # every one that started left a line. Counting uses shell builtins only: no fork is left.
    : >/tmp/started
    sh -c 'i=0; while [ $i -lt 500 ]; do sleep 5 </dev/null >/dev/null 2>&1 & echo x >>/tmp/started; i=$((i+1)); done' </dev/null >/dev/null 2>&1
    n=0
    while read -r _; do n=$((n+1)); done </tmp/started
    echo "$n" ;;
  *) echo "unknown path $HTTP_PATH" >&2; exit 2 ;;
esac
`;

let home: string;
let prefix: string;
let nodeBase: PulledBase;
let execBase: PulledBase;
let probe: string;
let execCode: string;
let n = 0;
const sandboxes: RuncSandbox[] = [];
const hostFiles: string[] = [];

function nodeSandbox(over: Partial<SandboxOptions> = {}): RuncSandbox {
  const id = over.id ?? `${prefix}-${++n}`;
  return trackedSandbox(sandboxes, {
    home,
    id,
    layers: [...nodeBase.layers, probe],
    imageConfig: nodeBase.imageConfig,
    env: { HEARTH_HANDLER: '/function/index.js' },
    limits: { memoryMb: 128, cpu: 1 },
    ...over,
  });
}

function execSandbox(over: Partial<SandboxOptions> = {}): RuncSandbox {
  const id = `${prefix}-${++n}`;
  return trackedSandbox(sandboxes, {
    home,
    id,
    layers: [...execBase.layers, execCode],
    imageConfig: execBase.imageConfig,
    env: { HEARTH_HANDLER: '/function/handler.sh' },
    limits: { memoryMb: 32, cpu: 0.5 },
    ...over,
  });
}



const exists = (p: string) => fs.access(p).then(() => true, () => false);

before(async () => {
  prefix = uniquePrefix('rt');
  home = await prefixedHome(prefix);
  [nodeBase, execBase] = await Promise.all([pullBase(home, 'node'), pullBase(home, 'exec')]);
  probe = await nodeCode(home, 'probe', PROBE);
  execCode = await codeLayer(home, 'exec', { 'handler.sh': { text: EXEC_HANDLER, mode: 0o755 } });
});

after(async () => {
  await Promise.allSettled(sandboxes.map((s) => s.stop()));
  await cleanupInstances(home, `${prefix}-`);
  await Promise.all(hostFiles.map((f) => fs.rm(f, { force: true })));
  await fs.rm(home, { recursive: true, force: true });
});

test('a node function has its own pid namespace, no capabilities, no host files, only its own loopback, a read-only root', async () => {
  // things on the host the function must not see or reach
  const secret = crypto.randomBytes(6).toString('hex');
  const inHostTmp = `/tmp/${prefix}-secret-${secret}`;
  const inRoot = `/root/${prefix}-secret-${secret}`;
  for (const f of [inHostTmp, inRoot]) {
    await fs.writeFile(f, 'host only');
    hostFiles.push(f);
  }
  let hostConnections = 0;
  let onConnection = () => {};
  const server = net.createServer((sock) => {
    hostConnections++;
    onConnection();
    sock.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  try {
    // the port is open, seen from the host: the server counts the connection
    await new Promise<void>((resolve, reject) => {
      onConnection = resolve;
      net.connect(port, '127.0.0.1').once('error', reject).once('connect', function (this: net.Socket) {
        this.destroy();
      });
    });
    const hostOnly = hostConnections;

    const s = nodeSandbox();
    await s.start();
    const query = new URLSearchParams([['host', inHostTmp], ['host', inRoot], ['port', String(port)]]).toString();
    const res = await s.invoke(get('/inside', query), { timeoutMs: 10_000 });
    assert.equal(res.status, 200, res.body.toString());
    const inside = JSON.parse(res.body.toString());

    assert.equal(inside.pid, 1);
    assert.deepEqual(inside.hostFiles, { [inHostTmp]: false, [inRoot]: false });
    for (const field of ['capEff', 'capPrm', 'capBnd', 'capInh', 'capAmb']) assert.equal(inside[field], '0000000000000000', field);
    assert.equal(inside.noNewPrivs, '1');
    assert.equal(inside.seccomp, '2'); // a filter is installed
    assert.deepEqual(inside.interfaces, ['lo']);
    assert.equal(inside.hostPort, 'ECONNREFUSED'); // its 127.0.0.1 is its own
    assert.equal(hostConnections, hostOnly);
    assert.equal(inside.writeEtc, 'EROFS');
    assert.equal(inside.writeRoot, 'EROFS');
    assert.equal(inside.writeFunction, 'EROFS');
    assert.equal(inside.writeTmp, 'ok');
    await s.stop();
  } finally {
    server.close();
  }
});

test('the memory limit kills the function that passes it (64 MB, 200 MB allocated); its neighbour keeps answering', async () => {
  const greedy = nodeSandbox({ limits: { memoryMb: 64, cpu: 1 } });
  const neighbour = nodeSandbox({ limits: { memoryMb: 64, cpu: 1 } });
  await Promise.all([greedy.start(), neighbour.start()]);
  assert.equal((await greedy.invoke(get('/alloc', 'mb=8'), { timeoutMs: 5000 })).status, 200); // under the limit: fine

  const err = await rejectsWith(greedy.invoke(get('/alloc', 'mb=200'), { timeoutMs: 15_000 }), 'UNAVAILABLE');
  assert.match(err.message, /instance died \(out of memory: the limit is 64 MB\)/);
  assert.deepEqual(await processesOf(greedy.id), []); // pid 1 died, and with it the namespace

  const res = await neighbour.invoke(get('/'), { timeoutMs: 5000 });
  assert.equal(res.body.toString(), 'alive');
  assert.equal(execFileSync('echo', ['host ok'], { encoding: 'utf8' }), 'host ok\n');

  await Promise.all([greedy.stop(), neighbour.stop()]);
  assert.deepEqual(await leftovers(home, greedy.id), []);
  assert.deepEqual(await leftovers(home, neighbour.id), []);
});

test('the pids limit caps a fork bomb (500 background sleeps, limit 32); stop() ends every one', async (t) => {
  const limit = 32;
  const bomb = execSandbox({ limits: { memoryMb: 32, cpu: 0.5, pids: limit } });
  const neighbour = execSandbox();
  await Promise.all([bomb.start(), neighbour.start()]);

  const res = await bomb.invoke(post('/bomb', ''), { timeoutMs: 10_000 });
  assert.equal(res.status, 200, res.body.toString());
  const started = Number(res.body.toString().trim());
  t.diagnostic(`${started} of 500 sleepers started under pids.max ${limit}`);
  // hearth-exec, its connection child, the handler and the child shell take 4 of the 32
  assert.ok(started > 0 && started <= limit - 4, `${started} sleepers started under a limit of ${limit}`);
  const cgroup = `/sys/fs/cgroup/pids/hearth/${bomb.id}`;
  assert.match(await fs.readFile(`${cgroup}/pids.events`, 'utf8'), /^max [1-9]/m); // forks were refused
  const alive = await processesOf(bomb.id);
  assert.ok(alive.length >= started && alive.length <= limit, `${alive.length} processes in the container`);

  // the host and the next sandbox are fine
  assert.equal(execFileSync('echo', ['host ok'], { encoding: 'utf8' }), 'host ok\n');
  assert.equal((await neighbour.invoke(post('/upper', 'still here'), { timeoutMs: 5000 })).body.toString(), 'STILL HERE');

  await bomb.stop();
  assert.deepEqual(await processesOf(bomb.id), []);
  for (const pid of alive) assert.equal(await isRunning(pid), false, `process ${pid} outlived stop()`);
  assert.deepEqual(await leftovers(home, bomb.id), []);
  await neighbour.stop();
});

test('seccomp refuses namespaces and mounts from inside (busybox unshare -r, mount -t tmpfs)', async (t) => {
  const s = execSandbox();
  await s.start();
  const unshare = await s.invoke(post('/unshare', ''), { timeoutMs: 5000 });
  assert.equal(unshare.status, 200, unshare.body.toString());
  // refused at the unshare(CLONE_NEWUSER) call itself: without the filter, that call works
  // here (no capability needed) and only the later uid_map write fails
  assert.match(unshare.body.toString(), /^unshare failed: unshare: unshare\(0x10000000\): Operation not permitted/);
  const mount = await s.invoke(post('/mount', ''), { timeoutMs: 5000 });
  assert.equal(mount.status, 200, mount.body.toString());
  assert.match(mount.body.toString(), /^mount failed: .*(Operation not permitted|permission denied)/i);
  t.diagnostic(`${unshare.body.toString().trim()} | ${mount.body.toString().trim()}`);
  await s.stop();
});

test('exec runtime: a #!/bin/sh handler running tr echoes the body uppercased; a non-zero exit is a 500', async () => {
  const s = execSandbox();
  await s.start();
  const ok = await s.invoke(post('/upper', 'hello from the exec runtime'), { timeoutMs: 5000 });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.toString(), 'HELLO FROM THE EXEC RUNTIME');
  const fail = await s.invoke(post('/fail', 'x', 'id=7'), { timeoutMs: 5000 });
  assert.equal(fail.status, 500);
  assert.match(fail.body.toString(), /refusing order id=7/);
  await s.stop();
});

test('after stop(): no runc container, no mount under the instance folder, no instance folder', async () => {
  const s = nodeSandbox();
  await s.start();
  const dir = instancePaths(home, s.id).dir;
  // while running, all three are there (so the checks below can fail)
  assert.ok(runcIds().includes(s.id));
  assert.ok(mountsMentioning(dir).length > 0);
  assert.ok(await exists(dir));
  await s.stop();
  assert.ok(!runcIds().includes(s.id));
  assert.deepEqual(mountsMentioning(dir), []);
  assert.equal(await exists(dir), false);
  assert.deepEqual(await processesOf(s.id), []);
});

test('cleanupInstances removes a container that was left running', async () => {
  // a prefix of its own, so what an earlier failed test left does not blur the result
  const left = nodeSandbox({ id: `${prefix}-left-1` });
  await left.start(); // and never stopped: as if the worker had died
  assert.ok(runcIds().includes(left.id));
  assert.ok((await processesOf(left.id)).length > 0);
  const removed = await cleanupInstances(home, `${prefix}-left-`);
  assert.deepEqual(removed, [left.id]);
  assert.deepEqual(await leftovers(home, left.id), []);
  assert.deepEqual(await processesOf(left.id), []);
});

test('at the end, cleanupInstances finds nothing left under the prefix', async () => {
  await Promise.all(sandboxes.map((s) => s.stop()));
  assert.deepEqual(await cleanupInstances(home, `${prefix}-`), []);
  assert.deepEqual(await leftoversWithPrefix(home, `${prefix}-`), []);
});
