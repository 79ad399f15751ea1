/**
 * Egress networking of runc sandboxes (`network: { egress: true }`): the instance gets eth0
 * on a veth pair with a /30 out of 10.213.0.0/16 and a default route via the host end. The
 * only traffic here is between the test and a veth it made (the host end's address) or
 * loopback: never beyond the host.
 * Needs root, runc, iproute2, gcc (static libc) and the registry.
 * Run: cd /work/main && node --import tsx --test test/runtime/egress.test.ts
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { cleanupInstances, type RuncSandbox, type SandboxOptions } from '@hearth/runtime';
import { get, leftovers } from './fixtures.ts';
import { useNodeFunction } from './node-function-kit.ts';

const exec = promisify(execFile);

const HANDLER = String.raw`
import fs from 'node:fs';
import net from 'node:net';
import { execFileSync } from 'node:child_process';

/** Connects to host:port, says hello, answers what came back or the error code. */
function connect(host, port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port: Number(port) });
    const timer = setTimeout(() => { sock.destroy(); resolve({ error: 'TIMEOUT' }); }, 3000);
    let reply = '';
    sock.on('connect', () => sock.write('hello from the function\n'));
    sock.on('data', (d) => { reply += d; if (reply.endsWith('\n')) { clearTimeout(timer); sock.destroy(); resolve({ reply: reply.trim() }); } });
    sock.on('error', (err) => { clearTimeout(timer); resolve({ error: err.code }); });
  });
}

export default async (request) => {
  const url = new URL(request.url);
  switch (url.pathname) {
    case '/connect': return connect(url.searchParams.get('host'), url.searchParams.get('port'));
    case '/net': return {
      interfaces: fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2).map((l) => l.split(':')[0].trim()).filter(Boolean).sort(),
      routes: fs.readFileSync('/proc/net/route', 'utf8').split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s+/)),
    };
    case '/probe': return JSON.parse(execFileSync('/function/netprobe', { encoding: 'utf8' }));
    default: return 'ok';
  }
};
`;

/** What a function with no capabilities tries against its own network: each must fail with EPERM. */
const NETPROBE = String.raw`
#include <errno.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *res(int rc) { return rc >= 0 ? "ok" : errno == EPERM ? "EPERM" : errno == EACCES ? "EACCES" : strerror(errno); }

int main(void) {
  int raw = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  const char *rawRes = res(raw);
  int packet = socket(AF_PACKET, SOCK_RAW, 0);
  const char *packetRes = res(packet);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, "eth0", IFNAMSIZ - 1);
  struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
  sin->sin_family = AF_INET;
  inet_pton(AF_INET, "10.213.0.77", &sin->sin_addr);
  const char *addrRes = res(ioctl(s, SIOCSIFADDR, &ifr));
  memset(&ifr.ifr_addr, 0, sizeof ifr.ifr_addr);
  ifr.ifr_flags = 0; /* down */
  const char *downRes = res(ioctl(s, SIOCSIFFLAGS, &ifr));
  struct rtentry rt;
  memset(&rt, 0, sizeof rt);
  ((struct sockaddr_in *)&rt.rt_dst)->sin_family = AF_INET;
  ((struct sockaddr_in *)&rt.rt_genmask)->sin_family = AF_INET;
  ((struct sockaddr_in *)&rt.rt_gateway)->sin_family = AF_INET;
  inet_pton(AF_INET, "10.213.0.1", &((struct sockaddr_in *)&rt.rt_gateway)->sin_addr);
  rt.rt_flags = RTF_UP | RTF_GATEWAY;
  const char *routeRes = res(ioctl(s, SIOCDELRT, &rt));
  printf("{\"rawSocket\":\"%s\",\"packetSocket\":\"%s\",\"setAddress\":\"%s\",\"linkDown\":\"%s\",\"deleteRoute\":\"%s\"}\n", rawRes, packetRes, addrRes, downRes, routeRes);
  return 0;
}
`;

const servers: net.Server[] = [];

const fn = useNodeFunction({
  name: 'rt-egress',
  handler: HANDLER,
  async setup({ home, code }) {
    await fs.writeFile(path.join(home, 'netprobe.c'), NETPROBE);
    await exec('gcc', ['-O1', '-static', '-o', path.join(code, 'function', 'netprobe'), path.join(home, 'netprobe.c')]);
    await fs.chmod(path.join(code, 'function', 'netprobe'), 0o755);
  },
  async afterAll({ prefix }) {
    for (const s of servers) s.close();
    assert.deepEqual((await netnsNames()).filter((ns) => ns.startsWith(`hearth-${prefix}`)), []);
  },
});
const sandbox = (over: Partial<SandboxOptions> = {}) => fn.sandbox(over);

async function call(s: RuncSandbox, p: string, query = ''): Promise<any> {
  const res = await s.invoke(get(p, query), { timeoutMs: 10_000 });
  assert.equal(res.status, 200, res.body.toString());
  return JSON.parse(res.body.toString());
}

/** A TCP server on host:0 that answers each line with "hello from the host"; resolves with its port and the lines it got. */
async function listen(host: string): Promise<{ port: number; got: string[] }> {
  const got: string[] = [];
  const server = net.createServer((sock) => {
    sock.on('data', (d) => {
      got.push(d.toString().trim());
      sock.end('hello from the host\n');
    });
    sock.on('error', () => undefined);
  });
  servers.push(server);
  server.listen(0, host);
  await once(server, 'listening');
  return { port: (server.address() as net.AddressInfo).port, got };
}

async function netnsNames(): Promise<string[]> {
  return (await fs.readdir('/var/run/netns').catch(() => [] as string[])).sort();
}

async function linkExists(name: string): Promise<boolean> {
  return exec('/usr/sbin/ip', ['link', 'show', name]).then(() => true, () => false);
}

test('with egress the function has eth0 and a default route via the host end, and reaches a server listening there', async () => {
  const s = sandbox({ network: { egress: true } });
  await s.start();
  const info = s.network;
  assert.ok(info, 'network info after start');
  assert.equal(info.netns, `hearth-${s.id}`);
  assert.match(info.hostInterface, /^hh\d+$/);
  assert.ok(info.hostInterface.length <= 15);
  assert.match(info.hostAddress, /^10\.213\.\d+\.\d+$/);
  // x.x.x.1 and x.x.x.2 of one /30
  const last = (a: string) => Number(a.split('.')[3]);
  assert.equal(last(info.hostAddress) % 4, 1);
  assert.equal(info.address, info.hostAddress.replace(/\d+$/, String(last(info.hostAddress) + 1)));
  assert.ok((await netnsNames()).includes(info.netns));

  const inside = await call(s, '/net');
  assert.deepEqual(inside.interfaces, ['eth0', 'lo']);
  // /proc/net/route: Iface Destination Gateway (hex, little endian) ...; the default route goes via the host end
  const gatewayHex = Buffer.from(info.hostAddress.split('.').map(Number)).readUInt32LE(0).toString(16).toUpperCase().padStart(8, '0');
  assert.ok(inside.routes.some((r: string[]) => r[0] === 'eth0' && r[1] === '00000000' && r[2] === gatewayHex), JSON.stringify(inside.routes));

  const server = await listen(info.hostAddress);
  assert.deepEqual(await call(s, '/connect', `host=${info.hostAddress}&port=${server.port}`), { reply: 'hello from the host' });
  assert.deepEqual(server.got, ['hello from the function']);
  await s.stop();
});

test('without egress the same connect fails with ENETUNREACH (loopback only)', async () => {
  const withNet = sandbox({ network: { egress: true } });
  const without = sandbox();
  await Promise.all([withNet.start(), without.start()]);
  const server = await listen(withNet.network!.hostAddress);
  assert.equal(without.network, undefined);
  assert.deepEqual((await call(without, '/net')).interfaces, ['lo']);
  assert.deepEqual(await call(without, '/connect', `host=${withNet.network!.hostAddress}&port=${server.port}`), { error: 'ENETUNREACH' });
  // egress: false is the same as no option
  const off = sandbox({ network: { egress: false } });
  await off.start();
  assert.deepEqual((await call(off, '/net')).interfaces, ['lo']);
  assert.equal(server.got.length, 0);
  await Promise.all([withNet.stop(), without.stop(), off.stop()]);
});

test("an egress instance does not reach the host's 127.0.0.1 services, and cannot change its own network", async () => {
  const s = sandbox({ network: { egress: true } });
  await s.start();
  const local = await listen('127.0.0.1');
  // 127.0.0.1 inside is the instance's own loopback; through the gateway, a loopback-bound
  // server is not there either
  assert.deepEqual(await call(s, '/connect', `host=127.0.0.1&port=${local.port}`), { error: 'ECONNREFUSED' });
  assert.deepEqual(await call(s, '/connect', `host=${s.network!.hostAddress}&port=${local.port}`), { error: 'ECONNREFUSED' });
  assert.deepEqual(local.got, []);
  // no CAP_NET_ADMIN / CAP_NET_RAW: no raw sockets, no address, link or route changes
  assert.deepEqual(await call(s, '/probe'), { rawSocket: 'EPERM', packetSocket: 'EPERM', setAddress: 'EPERM', linkDown: 'EPERM', deleteRoute: 'EPERM' });
  // and the link still works
  const server = await listen(s.network!.hostAddress);
  assert.deepEqual(await call(s, '/connect', `host=${s.network!.hostAddress}&port=${server.port}`), { reply: 'hello from the host' });
  await s.stop();
});

test('two egress instances get different /30s; stop() removes the namespace and the veth', async () => {
  const a = sandbox({ network: { egress: true } });
  const b = sandbox({ network: { egress: true } });
  await Promise.all([a.start(), b.start()]);
  const [na, nb] = [a.network!, b.network!];
  assert.notEqual(na.hostInterface, nb.hostInterface);
  assert.notEqual(na.hostAddress, nb.hostAddress);
  assert.ok(await linkExists(na.hostInterface));
  await a.stop();
  assert.equal(a.network, undefined);
  assert.ok(!(await netnsNames()).includes(na.netns), 'namespace gone');
  assert.ok(!(await linkExists(na.hostInterface)), 'veth gone');
  assert.deepEqual(await leftovers(fn.home, a.id), []);
  // the other instance is untouched
  assert.ok((await netnsNames()).includes(nb.netns));
  const server = await listen(nb.hostAddress);
  assert.deepEqual(await call(b, '/connect', `host=${nb.hostAddress}&port=${server.port}`), { reply: 'hello from the host' });
  await b.stop();
  assert.ok(!(await linkExists(nb.hostInterface)));
  await a.stop(); // twice is fine
});

test("cleanupInstances removes a crashed instance's namespace and veth, and only those under its prefix", async () => {
  const crashed = sandbox({ id: `${fn.prefix}-crash-1`, network: { egress: true } });
  const other = sandbox({ id: `${fn.prefix}-keep-1`, network: { egress: true } });
  await Promise.all([crashed.start(), other.start()]);
  const info = crashed.network!;
  const removed = await cleanupInstances(fn.home, `${fn.prefix}-crash-`);
  assert.deepEqual(removed, [crashed.id]);
  assert.ok(!(await netnsNames()).includes(info.netns));
  assert.ok(!(await linkExists(info.hostInterface)));
  assert.ok((await netnsNames()).includes(other.network!.netns));
  assert.ok(await linkExists(other.network!.hostInterface));
  assert.equal((await other.invoke(get('/'), { timeoutMs: 5000 })).body.toString(), 'ok');
  await other.stop();
  await crashed.stop(); // after cleanup: nothing left to do, no error
});

test('a failed start leaves no namespace or veth behind', async () => {
  const s = sandbox({ network: { egress: true }, env: { HEARTH_HANDLER: '/function/missing.js' }, readyTimeoutMs: 5000 });
  await assert.rejects(s.start(), /function failed to start/);
  assert.ok(!(await netnsNames()).includes(`hearth-${s.id}`));
  const { stdout } = await exec('/usr/sbin/ip', ['-j', 'link', 'show', 'type', 'veth']);
  assert.ok(!(JSON.parse(stdout) as { ifalias?: string }[]).some((l) => l.ifalias === `hearth-${s.id}`));
  assert.deepEqual(await leftovers(fn.home, s.id), []);
});
