/**
 * Attacks run from inside a deployed function, as a user's code would run them: the request
 * goes gateway → queue → worker → sandbox, and the attacker fixture
 * (test/fixtures/functions/attacker) tries what the path names and answers what happened.
 * Each test also checks that the host, and other functions, are fine afterwards.
 * Native syscalls come from syscalls.c, compiled here with gcc and shipped in the function.
 * Needs root, runc, gcc, Redis, Postgres and the registry.
 * Run: cd /work/main && node --import tsx --test test/security/sandbox-attacks.test.ts
 */
import { runcIds as listRuncIds } from '../runtime/fixtures.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../helpers/stack.ts';
import { useAttackerStack } from '../helpers/attacker-stack.ts';

const exec = promisify(execFile);
/** One function per set of limits; all run the attacker fixture. */
const FUNCTIONS = {
  main: 'memoryMb: 256\ncpu: 1\ntimeoutMs: 20000',
  mem: 'memoryMb: 64\ncpu: 1\ntimeoutMs: 15000',
  cpu: 'memoryMb: 128\ncpu: 0.2\ntimeoutMs: 20000',
  forks: 'memoryMb: 2048\ncpu: 1\ntimeoutMs: 60000',
  spin: 'memoryMb: 128\ncpu: 0.5\ntimeoutMs: 1500',
  logs: 'memoryMb: 256\ncpu: 1\ntimeoutMs: 60000',
  swap: 'memoryMb: 128\ncpu: 0.5\ntimeoutMs: 5000',
} as const;
type Fn = keyof typeof FUNCTIONS;
const attackers = useAttackerStack({ name: 'attack', functions: FUNCTIONS, env: { HEARTH_STEM_CELLS: '0' } });
const { prefix, fnName, call, attack } = attackers;

/** The host still forks, and a function's instance still answers. */
async function assertHostFine(fn: Fn = 'main'): Promise<void> {
  const { stdout } = await exec('sh', ['-c', 'echo host-ok']);
  assert.equal(stdout.trim(), 'host-ok');
  assert.equal((await call(fn, 'ok')).status, 200);
}

async function runcIds(): Promise<string[]> {
  return listRuncIds();
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

// ------------------------------------------------------------------ identity

test('identity: the function runs as nobody with no capabilities, no-new-privileges and a seccomp filter', async () => {
  const me = await attack('main', 'identity');
  assert.equal(me.uid, 65534);
  assert.equal(me.euid, 65534);
  assert.equal(me.gid, 65534);
  assert.ok(!me.groups.includes(0), `groups ${me.groups}`);
  for (const field of ['capEff', 'capPrm', 'capBnd', 'capInh', 'capAmb']) assert.equal(me[field], '0000000000000000', field);
  assert.equal(me.noNewPrivs, '1');
  assert.equal(me.seccomp, '2');
});

// ------------------------------------------------------------------ filesystem

test('filesystem: root and code are read-only, host files and secrets are out of sight, masked and read-only kernel paths hold', async () => {
  const hostShadow = crypto.createHash('sha256').update(await fs.readFile('/etc/shadow')).digest('hex');
  // a file only the host has, in a folder the image has too
  const hostOnly = `/root/${prefix}-host-only`;
  await fs.writeFile(hostOnly, 'host only');
  const hostPaths = [attackers.stack.home, REPO_ROOT, hostOnly, '/etc/shadow-', '/var/run/docker.sock', '/run/containerd'];
  const fsr = await attack('main', 'fs', new URLSearchParams(hostPaths.map((p): [string, string] => ['host', p]))).finally(() => fs.rm(hostOnly, { force: true }));

  const { env: _env, pid1Environ: _environ, ...shown } = fsr;
  console.log('filesystem:', JSON.stringify(shown));
  assert.equal(fsr.writeRoot, 'EROFS');
  assert.equal(fsr.writeFunction, 'EROFS');
  assert.ok(['EROFS', 'EACCES'].includes(fsr.writeEtcPasswd), fsr.writeEtcPasswd);
  assert.notEqual(fsr.shadow, hostShadow, 'the function read the host\'s /etc/shadow');
  assert.ok(['ENOENT', 'EACCES'].includes(fsr.shadow), `/etc/shadow: ${fsr.shadow}`);
  for (const p of hostPaths) assert.equal(fsr.hostPaths[p], false, `${p} is visible inside`);

  // no host secret reaches the function: neither in its env nor in pid 1's (its own bootstrap)
  const secrets = [attackers.stack.apiKey, attackers.db.url, attackers.db.name, 'DATABASE_URL', 'REDIS_URL', 'HEARTH_API_KEY'];
  const seen = JSON.stringify({ env: fsr.env, environ: fsr.pid1Environ });
  for (const s of secrets) assert.ok(!seen.includes(s), `the function sees ${s.slice(0, 12)}…`);
  assert.ok(fsr.pids <= 3, `${fsr.pids} processes visible in /proc: the host's?`);

  // masked paths read empty, read-only ones refuse writes
  // masked: bound to /dev/null (this kernel may have no /proc/kcore at all)
  const hostKcore = await fs.access('/proc/kcore').then(() => true, () => false);
  assert.equal(fsr.kcoreBytes, hostKcore ? 0 : 'ENOENT');
  assert.equal(fsr.procKeys, '');
  assert.equal(fsr.timerList, '');
  assert.equal(fsr.sysFirmware, 'ok'); // empty
  for (const key of ['writeProcSys', 'writeSysrq', 'writeSys', 'writeCgroupLimit', 'mkdirCgroup']) {
    assert.ok(['EROFS', 'EACCES', 'ENOENT'].includes(fsr[key]), `${key}: ${fsr[key]}`);
  }
  assert.equal(fsr.oomScoreAdj, 'EACCES');
  assert.deepEqual(fsr.setidFiles, []);
  // runc's default devices only: nothing that reaches a disk or kernel memory
  for (const dev of fsr.devices as string[]) {
    assert.ok(['console', 'core', 'fd', 'full', 'mqueue', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero'].includes(dev), `/dev/${dev}`);
  }
});

test('filesystem: filling /tmp stops at 64 MB with ENOSPC; the space comes back and the instance keeps answering', async () => {
  const first = await attack('main', 'tmp-fill');
  assert.equal(first.error, 'ENOSPC');
  assert.ok(first.writtenMb >= 60 && first.writtenMb <= 64, `wrote ${first.writtenMb} MB`);
  const again = await attack('main', 'tmp-fill');
  assert.deepEqual(again, first);
  await assertHostFine();
});

// ------------------------------------------------------------------ escalation

test('escalation: setuid(0), a root child, a higher priority and a kill of a host process of the same uid all fail', async () => {
  // a host process owned by nobody, as the function is: only the pid namespace keeps it out of reach
  const victim: ChildProcess = spawn('sleep', ['60'], { uid: 65534, gid: 65534, stdio: 'ignore' });
  try {
    const r = await attack('main', 'escalate', `hostPid=${victim.pid}`);
    console.log('escalation:', JSON.stringify(r));
    assert.equal(r.setuid, 'EPERM');
    assert.equal(r.seteuid, 'EPERM');
    assert.equal(r.setgid, 'EPERM');
    assert.equal(r.setgroups, 'EPERM');
    assert.equal(r.spawnAsRoot, 'EPERM');
    assert.equal(r.niceness, 'EACCES');
    assert.equal(r.uidAfter, 65534);
    assert.equal(r.pid, 1); // its own pid namespace
    assert.equal(r.killHostProcess, 'ESRCH');
    assert.equal(victim.exitCode, null);
    assert.equal(victim.signalCode, null);
  } finally {
    victim.kill('SIGKILL');
  }
});

test('escalation: native code (dlopen) meets seccomp: mount, namespaces, ptrace, bpf, keyrings, modules, io_uring, raw sockets are refused', async () => {
  const r = await attack('main', 'syscalls');
  console.log('native syscalls:', JSON.stringify(r));
  assert.equal(r.error, undefined, r.error);
  // seccomp's EPERM, or the missing capability's; never "ok"
  const refused = [
    'mount', 'umount2', 'unshare_user', 'unshare_mount', 'unshare_net', 'clone_newuser', 'clone_newpid', 'setns', 'chroot', 'pivot_root',
    'ptrace_traceme', 'ptrace_attach_parent', 'process_vm_readv', 'bpf', 'perf_event_open', 'io_uring_setup', 'userfaultfd', 'keyctl', 'add_key',
    'kexec_load', 'init_module', 'delete_module', 'reboot', 'clock_settime', 'swapon', 'syslog_read', 'open_by_handle_at', 'iopl',
    'mknod_block_dev', 'raw_socket', 'sethostname', 'setuid0', 'acct',
  ];
  const got = Object.fromEntries(refused.map((k) => [k, r[k]]));
  assert.deepEqual(got, Object.fromEntries(refused.map((k) => [k, 'EPERM'])), JSON.stringify(r));
  assert.equal(r.clone3, 'ENOSYS'); // so libc falls back to clone(), whose flags seccomp can read
  await assertHostFine();
});

test('filesystem: /run/hearth, a host folder, holds no more than /tmp does (64 MB)', async () => {
  const r = await attack('main', 'fill-run', 'mb=100');
  console.log('fill /run/hearth:', JSON.stringify(r));
  assert.ok(r.writtenMb <= 64, `the function wrote ${r.writtenMb} MB to the host's disk through /run/hearth (${r.error})`);
  await assertHostFine();
});

test('invoke socket: a function that swaps its socket for a symlink cannot send the worker to a host socket', async () => {
  // a host-only Unix socket (say, a container engine's API) that counts who reaches it
  const target = path.join(os.tmpdir(), `${prefix}-host.sock`);
  let hostHits = 0;
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    hostHits++;
    seen.push(`${req.method} ${req.url}`);
    res.end('answered by a host socket');
  });
  await new Promise<void>((resolve) => server.listen(target, resolve));
  try {
    assert.equal((await call('swap', 'ok')).status, 200);
    const r = await attack('swap', 'swap-socket', `target=${encodeURIComponent(target)}`);
    console.log('swap socket:', JSON.stringify(r));
    // the function drops the worker's kept-alive connection: the next call connects anew
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // what a caller would send to, say, a container engine's socket
    const res = await fetch(`${attackers.stack.gatewayUrl}/function/${fnName('swap')}/v1.41/containers/create`, { method: 'POST', body: '{"Image":"x"}' });
    const next = { status: res.status, text: await res.text() };
    console.log('the call after the swap:', next.status, next.text, seen);
    assert.equal(hostHits, 0, `the worker followed the function's symlink to the host socket ${target} and sent ${seen.join(', ')}; the caller got ${next.status} "${next.text}"`);
    assert.notEqual(next.text, 'answered by a host socket');
  } finally {
    server.close();
    await fs.rm(target, { force: true });
  }
});

// ------------------------------------------------------------------ network

test('network: only its own loopback; the host\'s loopback services, its address and its abstract sockets are unreachable', async () => {
  const gatewayPort = Number(new URL(attackers.stack.gatewayUrl).port);
  const ports = [gatewayPort, 6379, 5432, 5000];
  // what the host has: the same ports answer here, an abstract socket counts connections
  for (const port of ports) {
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(); }).once('error', reject);
    });
  }
  const abstract = `${prefix}-abstract`;
  let abstractConnections = 0;
  const server = net.createServer((s) => { abstractConnections++; s.destroy(); });
  await new Promise<void>((resolve) => server.listen({ path: `\0${abstract}` }, resolve));
  // the host's own non-loopback address: from a namespace with only lo there is no route to it
  const hostIp = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  try {
    const q = new URLSearchParams(ports.map((p): [string, string] => ['port', String(p)]));
    q.set('abstract', abstract);
    if (hostIp) q.set('hostIp', hostIp);
    const r = await attack('main', 'network', q);
    assert.deepEqual(r.interfaces, ['lo']);
    assert.deepEqual(r.loopback, Object.fromEntries(ports.map((p) => [p, 'ECONNREFUSED'])));
    if (hostIp) assert.equal(r.hostAddress, 'ENETUNREACH');
    assert.equal(r.abstractSocket, 'ECONNREFUSED');
    assert.equal(abstractConnections, 0);
  } finally {
    server.close();
  }
});

// ------------------------------------------------------------------ resources

test('memory: a function that allocates past memoryMb gets a 502 naming out of memory; others keep working; the next call gets a new instance', async () => {
  const before = await call('mem', 'ok');
  assert.equal(before.status, 200, before.text);
  const [bomb, neighbour] = await Promise.all([call('mem', 'memory', 'mb=256'), call('main', 'ok')]);
  assert.equal(neighbour.status, 200, neighbour.text);
  assert.equal(bomb.status, 502, bomb.text);
  assert.equal(bomb.body.code, 'BAD_GATEWAY');
  assert.match(bomb.body.error, /out of memory: the limit is 64 MB/);
  const next = await call('mem', 'ok');
  assert.equal(next.status, 200, next.text);
  assert.notEqual(next.instance, before.instance);
  await assertHostFine();
});

test('pids: a native fork bomb stops at the pids limit (EAGAIN); the host and the instance are fine', async () => {
  const r = await attack('main', 'forkbomb-native');
  console.log('native fork bomb:', JSON.stringify(r));
  assert.equal(r.error, 'EAGAIN', JSON.stringify(r));
  // 128 pids for the container, some of them the bootstrap's and the probe's threads
  assert.ok(r.forked > 50 && r.forked < 128, `forked ${r.forked}`);
  await assertHostFine();
  assert.equal((await call('main', 'ok')).start, 'warm');
});

test('pids: spawning node children in a loop stops at the pids limit; the host is fine', async () => {
  const r = await attack('forks', 'forkbomb');
  console.log('node fork bomb:', JSON.stringify(r));
  assert.equal(r.pids.max, '128');
  assert.ok(Number(r.pids.current) <= 128, `pids.current ${r.pids.current}`);
  assert.ok(r.alive < 128, `${r.alive} children alive`);
  assert.ok(r.error === 'EAGAIN' || r.spawned < 200, JSON.stringify(r));
  await assertHostFine('forks');
});

test('cpu: a busy loop in a function with cpu: 0.2 gets about 0.2 cores', async () => {
  const r = await attack('cpu', 'cpu', 'ms=2000');
  console.log('cpu 0.2:', JSON.stringify(r));
  assert.equal(r.quotaUs, 20_000);
  assert.equal(r.periodUs, 100_000);
  assert.ok(r.cpuMs / r.wallMs < 0.6, `used ${r.cpuMs} ms of cpu in ${r.wallMs} ms`);
});

test('open files: opening files until EMFILE stops at the 4096 limit; the instance keeps answering', async () => {
  const r = await attack('main', 'files');
  console.log('open files:', JSON.stringify(r));
  assert.equal(r.error, 'EMFILE');
  assert.equal(r.soft, 4096);
  assert.equal(r.hard, 4096);
  assert.ok(r.opened > 3900 && r.opened < 4096, `opened ${r.opened}`);
  assert.equal((await call('main', 'ok')).start, 'warm');
});

test('response size: a 20 MB answer is a 502 naming the 6 MB limit; the same instance answers the next call', async () => {
  const ok = await call('main', 'ok');
  const big = await call('main', 'big', 'mb=20');
  assert.equal(big.status, 502, big.text);
  assert.match(big.body.error, /larger than the limit of 6 MB/);
  const next = await call('main', 'ok');
  assert.equal(next.status, 200);
  assert.equal(next.instance, ok.instance);
  assert.equal(next.start, 'warm');
});

test('logs: 50 MB printed to stdout does not keep 50 MB of logs on the host', async () => {
  const r = await call('logs', 'logs', 'mb=50');
  assert.equal(r.status, 200, r.text);
  const dir = path.join(attackers.stack.home, 'logs', fnName('logs'));
  let total = 0;
  for (const f of await fs.readdir(dir)) total += (await fs.stat(path.join(dir, f))).size;
  console.log(`logs kept for 50 MB printed: ${(total / 1024 / 1024).toFixed(1)} MB in ${dir}`);
  assert.ok(total < 20 * 1024 * 1024, `the host keeps ${(total / 1024 / 1024).toFixed(1)} MB of this function's logs: no cap on logs`);
  await assertHostFine('logs');
});

// ------------------------------------------------------------------ timeouts

test('timeouts: an endless loop gets a 504 after timeoutMs, its instance is stopped, and the next call works', async () => {
  const spin = await call('spin', 'spin');
  assert.equal(spin.status, 504, spin.text);
  assert.match(spin.body.error, /timed out after 1500 ms; the instance was stopped/);
  assert.ok(spin.instance, 'the 504 names the instance');
  await waitFor('the timed-out container to be gone', async () => !(await runcIds()).includes(spin.instance!));
  const next = await call('spin', 'ok');
  assert.equal(next.status, 200, next.text);
  assert.notEqual(next.instance, spin.instance);
});
