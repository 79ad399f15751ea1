/**
 * The hearth.yaml fields `pids` and `egress` through the deployed path (CLI deploy →
 * gateway → queue → worker → sandbox), with the attacker fixture
 * (test/fixtures/functions/attacker) and its native fork bomb.
 * - `pids: 32` holds on both ways an instance starts: a specialized stem cell and a cold start.
 * - `egress: true` never takes a stem cell (a cell has no network interface): it cold-starts
 *   with eth0 and reaches a server the test listens on at its gateway (the host end of its
 *   veth). Only that veth and loopback see traffic.
 * Needs root, runc, iproute2, gcc, Redis, Postgres and the registry.
 * Run: cd /work/main && node --import tsx --test test/e2e/limits.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import { promisify } from 'node:util';
import { useAttackerStack } from '../helpers/attacker-stack.ts';

const exec = promisify(execFile);
const servers: net.Server[] = [];

const FUNCTIONS = {
  few: 'memoryMb: 256\ncpu: 1\ntimeoutMs: 30000\npids: 32',
  out: 'memoryMb: 256\ncpu: 1\ntimeoutMs: 30000\npids: 32\negress: true',
} as const;
const attackers = useAttackerStack({
  name: 'limits',
  functions: FUNCTIONS,
  env: { HEARTH_STEM_CELLS: '1', HEARTH_WORKER_MEMORY_MB: '2000' },
  async afterStop() {
    for (const s of servers) s.close();
    // the worker's stop released its instances: no namespace or veth of this stack is left
    assert.deepEqual(await egressLeftovers(), []);
  },
});
const { prefix } = attackers;
/** Each of these attacks answers 200. */
const call = async (fn: keyof typeof FUNCTIONS, attack: string, query = '') => {
  const answer = await attackers.call(fn, attack, query);
  assert.equal(answer.status, 200, `${attack}: ${answer.text}`);
  return answer;
};

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function stemCellReady(): Promise<void> {
  await waitFor('a ready stem cell', async () => {
    const res = await fetch(`${attackers.stack.gatewayUrl}/system/instances`, { headers: attackers.stack.authHeaders });
    const body = (await res.json()) as { workers: { stemCells: Record<string, { ready: number }> }[] };
    return body.workers.some((w) => (w.stemCells.node?.ready ?? 0) > 0);
  });
}

/** Host veths and namespaces Hearth made for this stack's instances. */
async function egressLeftovers(): Promise<string[]> {
  const { stdout } = await exec('/usr/sbin/ip', ['-j', 'link', 'show', 'type', 'veth']);
  const links = (JSON.parse(stdout) as { ifname: string; ifalias?: string }[]).filter((l) => l.ifalias?.startsWith(`hearth-${prefix}`)).map((l) => `veth ${l.ifname}`);
  const namespaces = (await fs.readdir('/var/run/netns').catch(() => [] as string[])).filter((n) => n.startsWith(`hearth-${prefix}`)).map((n) => `netns ${n}`);
  return [...links, ...namespaces];
}

/** The address of the host end of instance `id`'s veth (its gateway). */
async function gatewayOf(id: string): Promise<string> {
  const { stdout } = await exec('/usr/sbin/ip', ['-j', 'link', 'show', 'type', 'veth']);
  const link = (JSON.parse(stdout) as { ifname: string; ifalias?: string }[]).find((l) => l.ifalias === `hearth-${id}`);
  assert.ok(link, `a veth for instance ${id}`);
  const addr = JSON.parse((await exec('/usr/sbin/ip', ['-j', '-4', 'addr', 'show', 'dev', link.ifname])).stdout) as { addr_info: { local: string }[] }[];
  const local = addr[0]?.addr_info[0]?.local;
  assert.ok(local, `an address on ${link.ifname}`);
  return local;
}

test('pids: 32 on a specialized stem cell: a fork bomb stops at the limit (EAGAIN) and the instance keeps answering', async () => {
  await stemCellReady();
  const first = await call('few', 'ok');
  assert.equal(first.start, 'stemcell');
  const r = (await call('few', 'forkbomb-native')).body;
  console.log('fork bomb with pids: 32 (stem cell):', JSON.stringify(r));
  assert.equal(r.error, 'EAGAIN', JSON.stringify(r));
  // 32 for the whole instance, some of them the bootstrap's and the probe's threads (128 by default)
  assert.ok(r.forked > 5 && r.forked < 32, `forked ${r.forked}`);
  const after = await call('few', 'ok');
  assert.equal(after.start, 'warm');
  assert.equal(after.instance, first.instance);
  // no egress: loopback only
  assert.deepEqual((await call('few', 'network')).body.interfaces, ['lo']);
});

test('egress: true cold-starts even with a stem cell ready, has eth0 and reaches a server at its gateway; pids: 32 holds on a cold start', async () => {
  await stemCellReady();
  const first = await call('out', 'network');
  assert.equal(first.start, 'cold');
  assert.deepEqual(first.body.interfaces, ['eth0', 'lo']);
  const gateway = await gatewayOf(first.instance!);
  assert.match(gateway, /^10\.213\./);

  const server = net.createServer((sock) => sock.end());
  servers.push(server);
  server.listen(0, gateway);
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const reached = once(server, 'connection');
  const res = await call('out', 'network', `hostIp=${gateway}&port=${port}`);
  assert.equal(res.body.hostAddress, 'connected');
  assert.equal(res.instance, first.instance);
  await reached;

  const r = (await call('out', 'forkbomb-native')).body;
  console.log('fork bomb with pids: 32 (cold):', JSON.stringify(r));
  assert.equal(r.error, 'EAGAIN', JSON.stringify(r));
  assert.ok(r.forked > 5 && r.forked < 32, `forked ${r.forked}`);
  assert.equal((await call('out', 'ok')).start, 'warm');
});
