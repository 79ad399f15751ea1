/**
 * Egress networking for a runc container: a named network namespace joined by the
 * container, and a veth pair whose host end routes for it. Everything goes through
 * iproute2's `ip` (one exec per step, batched where it can be).
 *
 * Names, so that cleanup finds what a killed worker left and nothing else:
 * - the namespace is `hearth-<sandbox id>` (a file in /var/run/netns; ids are ≤128 chars);
 * - the host end of the veth is `hh<index>` (interface names hold at most 15 bytes), where
 *   index picks the instance's /30 out of 10.213.0.0/16, and carries the namespace name as
 *   its alias (`ip link set … alias`), which cleanup matches by prefix.
 *
 * The /30 is claimed by creating the veth: interface names are unique in the host's
 * namespace, so two workers (or tests) that pick the same index race on `ip link add` and
 * one of them gets EEXIST and moves on. Addresses someone else configured in the range are
 * skipped too. Hearth sets no sysctl and no firewall rule: reaching beyond the host needs the
 * operator's ip_forward and masquerade (see API.md).
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { HearthError } from '@hearth/core';

const exec = promisify(execFile);

const IP = process.env.HEARTH_IP ?? '/usr/sbin/ip';
/** 10.213.0.0/16, Hearth's: 16384 /30s. */
const RANGE_BASE = (10 << 24) | (213 << 16);
const SLOTS = 16384;
const NETNS_DIR = '/var/run/netns';
const NETNS_PREFIX = 'hearth-';
const MAX_TRIES = 64;

/** An instance's network: what the container joins, and the two ends of its link. */
export interface EgressNetwork {
  /** `ip netns` name: `hearth-<sandbox id>`. */
  netns: string;
  /** What the OCI config's network namespace entry points at. */
  nsPath: string;
  /** The veth end in the host's namespace (`hh<index>`). */
  hostInterface: string;
  /** The host end's address: the container's default gateway (x.x.x.1 of the /30). */
  hostAddress: string;
  /** The container's address on eth0 (x.x.x.2 of the /30). */
  address: string;
  prefixLength: 30;
}

/** The network namespace name of sandbox `id`. */
export function netnsName(id: string): string {
  return `${NETNS_PREFIX}${id}`;
}

function ipError(what: string, err: unknown): HearthError {
  const e = err as { stderr?: string; message?: string; code?: string };
  if (e.code === 'ENOENT') return new HearthError('UNAVAILABLE', `egress needs iproute2 (looked for "${IP}"): apt-get install iproute2`, { cause: err });
  return new HearthError('UNAVAILABLE', `ip ${what}: ${(e.stderr || e.message || String(err)).trim()}`, { cause: err });
}

async function ip(args: string[]): Promise<string> {
  const { stdout } = await exec(IP, args);
  return stdout;
}

/** `ip [-n netns] -batch -`: several commands in one exec; stops at the first that fails. */
function ipBatch(lines: string[], netns?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(IP, [...(netns ? ['-n', netns] : []), '-batch', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(Object.assign(new Error(`ip -batch exited with ${code}`), { stderr }))));
    child.stdin.end(`${lines.join('\n')}\n`);
  });
}

function dotted(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function toNumber(address: string): number {
  return address.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
}

/** IPv4 addresses (with prefix length) configured on the host's interfaces. */
async function hostAddresses(): Promise<{ address: number; prefixLength: number }[]> {
  const links = JSON.parse(await ip(['-j', '-4', 'addr', 'show'])) as { addr_info?: { local?: string; prefixlen?: number }[] }[];
  return links.flatMap((l) => l.addr_info ?? []).filter((a) => a.local).map((a) => ({ address: toNumber(a.local!), prefixLength: a.prefixlen ?? 32 }));
}

/** The /30 `slot` overlaps an address configured on the host (its subnet, or the address itself). */
function overlaps(slot: number, taken: { address: number; prefixLength: number }[]): boolean {
  const lo = (RANGE_BASE + slot * 4) >>> 0;
  const hi = lo + 3;
  return taken.some(({ address, prefixLength }) => {
    const size = prefixLength >= 32 ? 1 : 2 ** (32 - prefixLength);
    const start = Math.floor(address / size) * size;
    return start <= hi && start + size - 1 >= lo;
  });
}

/**
 * Creates the namespace `hearth-<id>` with loopback up and eth0 = x.x.x.2/30, default route via
 * x.x.x.1 on the host end. Throws UNAVAILABLE (and leaves nothing behind) when `ip` fails or
 * no /30 is free.
 */
export async function createEgressNetwork(id: string): Promise<EgressNetwork> {
  const netns = netnsName(id);
  try {
    await ip(['netns', 'add', netns]);
  } catch (err) {
    throw ipError(`netns add ${netns}`, err);
  }
  let hostInterface: string | undefined;
  try {
    // start where the id's hash points, so concurrent instances rarely even race
    const first = crypto.createHash('sha256').update(id).digest().readUInt32BE(0) % SLOTS;
    const taken = await hostAddresses();
    for (let i = 0, tries = 0; i < SLOTS && tries < MAX_TRIES && !hostInterface; i++) {
      const slot = (first + i) % SLOTS;
      if (overlaps(slot, taken)) continue;
      tries++;
      const name = `hh${slot}`;
      try {
        await ip(['link', 'add', name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
        hostInterface = name;
      } catch (err) {
        // another instance holds this /30
        if (!/exists/i.test((err as { stderr?: string }).stderr ?? '')) throw ipError(`link add ${name}`, err);
      }
    }
    if (!hostInterface) throw new HearthError('UNAVAILABLE', `no free /30 for ${netns} in 10.213.0.0/16: host addresses overlap it or leftover instances hold it (see ip -br link show type veth; restarting the worker removes its own leftovers)`);
    const slot = Number(hostInterface.slice(2));
    const net = (RANGE_BASE + slot * 4) >>> 0;
    const network: EgressNetwork = { netns, nsPath: `${NETNS_DIR}/${netns}`, hostInterface, hostAddress: dotted(net + 1), address: dotted(net + 2), prefixLength: 30 };
    try {
      await ipBatch([`link set ${hostInterface} alias ${netns}`, `addr add ${network.hostAddress}/30 dev ${hostInterface}`, `link set ${hostInterface} up`]);
      await ipBatch(['link set lo up', `addr add ${network.address}/30 dev eth0`, 'link set eth0 up', `route add default via ${network.hostAddress}`], netns);
    } catch (err) {
      throw ipError(`setting up ${hostInterface} for ${netns}`, err);
    }
    return network;
  } catch (err) {
    await removeEgressNetwork({ netns, hostInterface }).catch(() => undefined);
    throw err;
  }
}

/** Deletes the veth pair (both ends) and the namespace. Missing pieces are not an error. */
export async function removeEgressNetwork(net: { netns: string; hostInterface?: string | undefined }): Promise<void> {
  if (net.hostInterface) {
    try {
      await ip(['link', 'del', net.hostInterface]);
    } catch (err) {
      if (!/cannot find device|does not exist/i.test((err as { stderr?: string }).stderr ?? '')) throw ipError(`link del ${net.hostInterface}`, err);
    }
  }
  try {
    await ip(['netns', 'del', net.netns]);
  } catch (err) {
    if (!/no such file/i.test((err as { stderr?: string }).stderr ?? '')) throw ipError(`netns del ${net.netns}`, err);
  }
}

/**
 * Removes the veths and namespaces of sandboxes whose id starts with `prefix` (what a killed
 * worker left). Returns the namespace and interface names it removed.
 */
export async function cleanupEgressNetworks(prefix: string): Promise<string[]> {
  if (!prefix) throw new HearthError('INVALID_ARGUMENT', 'cleanupEgressNetworks needs a non-empty id prefix');
  const want = netnsName(prefix);
  const removed: string[] = [];
  let links: { ifname: string; ifalias?: string }[] = [];
  try {
    links = JSON.parse(await ip(['-j', 'link', 'show', 'type', 'veth'])) as typeof links;
  } catch (err) {
    // no iproute2: then Hearth never made a namespace either
    if ((err as { code?: string }).code === 'ENOENT') return removed;
    throw ipError('link show', err);
  }
  for (const l of links) {
    if (/^hh\d+$/.test(l.ifname) && l.ifalias?.startsWith(want)) {
      await removeEgressNetwork({ netns: l.ifalias, hostInterface: l.ifname });
      removed.push(l.ifname, l.ifalias);
    }
  }
  for (const ns of await listNetns()) {
    if (ns.startsWith(want) && !removed.includes(ns)) {
      await removeEgressNetwork({ netns: ns });
      removed.push(ns);
    }
  }
  return removed;
}

/** Names in /var/run/netns (what `ip netns list` shows). */
async function listNetns(): Promise<string[]> {
  return fs.readdir(NETNS_DIR).catch(() => [] as string[]);
}
