/**
 * Floors (references) for benchmarks and `hearth bench startup`: the floors Hearth's paths are measured against, in the same run, on the same image,
 * outside Hearth's gateway, queue and pool:
 *  - `runcRunFloor`: `runc run` of an instance's own bundle until the bootstrap answers one
 *    request on its socket (what any container start of this image costs);
 *  - `directSocketFloor`: an HTTP request straight to a running instance's socket.
 * Both work on a `FloorImage`: the image pulled and unpacked into a home of its own, so no
 * worker's instances or layers are touched.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureLayersUnpacked, openContentStore, parseReference, pullImage, RegistryClient } from '@hearth/oci';
import { createRuncSandbox, instancePaths, type RuncSandbox } from './runc/runc-sandbox.ts';
import type { SandboxImageConfig } from './sandbox.ts';

const exec = promisify(execFile);

/** Times one step in ms; a step that takes over a minute is a failure, not a sample. */
async function timed(step: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('a reference start hung for 60 s')), 60_000);
  });
  try {
    await Promise.race([step(), hang]);
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - t0;
}

/** One POST on an instance's socket; resolves with the status once the body is read. */
export function socketRequest(socketPath: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method: 'POST', path: '/', headers: { 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Polls (every 2 ms, as the runc driver does) until the socket accepts a connection. */
export async function waitForSocket(socketPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(socketPath);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`socket ${socketPath} not ready`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** An image pulled and unpacked under `<work>/floor-home`; instance ids start with `prefix`. */
export interface FloorImage {
  work: string;
  prefix: string;
  home: string;
  layers: string[];
  imageConfig: SandboxImageConfig;
  /** The instance limits of the floors' sandboxes (default: memoryMb 128, cpu 0.5, a hello function's). */
  limits: { memoryMb: number; cpu: number };
}

/** Pulls `imageRef` (ref@digest) from its registry and unpacks its layers for the floors. */
export async function prepareFloorImage(opts: { imageRef: string; work: string; prefix: string; limits?: { memoryMb: number; cpu: number } }): Promise<FloorImage> {
  const home = path.join(opts.work, 'floor-home');
  const store = openContentStore(path.join(home, 'content'));
  const ref = parseReference(opts.imageRef);
  const image = await pullImage({ store, client: new RegistryClient({ registry: ref.registry, insecure: true }), ref });
  const layers = await ensureLayersUnpacked({ home, store, image });
  const imageConfig = (image.config as { config?: SandboxImageConfig }).config ?? {};
  return { work: opts.work, prefix: opts.prefix, home, layers, imageConfig, limits: opts.limits ?? { memoryMb: 128, cpu: 0.5 } };
}

/** A sandbox of the image with the floor's limits. */
function floorSandbox(image: FloorImage, id: string): RuncSandbox {
  return createRuncSandbox({
    home: image.home,
    id,
    layers: image.layers,
    imageConfig: image.imageConfig,
    limits: image.limits,
    logPath: path.join(image.work, `${id}.log`),
  });
}

/** `n` direct HTTP requests, one after another, on the socket of a running instance of the image (after one warm-up request). */
export async function directSocketFloor(image: FloorImage, n: number): Promise<number[]> {
  const id = `${image.prefix}-floor`;
  const sandbox = floorSandbox(image, id);
  await sandbox.start();
  try {
    const socket = instancePaths(image.home, id).hostSocket;
    await socketRequest(socket, 'warmup');
    const samples: number[] = [];
    for (let i = 0; i < n; i++) samples.push(await timed(() => socketRequest(socket, 'world')));
    return samples;
  } finally {
    await sandbox.stop();
  }
}

/**
 * `n` runs of `runc run --detach` of the bundle the runc driver writes for the image, each
 * timed until the bootstrap answers one request on its socket. Each run gets a fresh overlay
 * rootfs (mounted before the clock starts, as a pool's would be) and is removed after.
 */
export async function runcRunFloor(image: FloorImage, n: number): Promise<number[]> {
  // The driver's own config.json (namespaces, limits, seccomp, mounts): start one instance to get it.
  const specId = `${image.prefix}-floor-spec`;
  const specSandbox = floorSandbox(image, specId);
  await specSandbox.start();
  const instanceDir = path.join(image.home, 'instances', specId);
  let bundleConfig: { hostname: string; linux: { cgroupsPath: string }; process: { user: { uid: number; gid: number } }; mounts: { destination: string; source: string }[] };
  try {
    bundleConfig = JSON.parse(await fs.readFile(path.join(instanceDir, 'bundle', 'config.json'), 'utf8'));
  } finally {
    await specSandbox.stop();
  }

  const samples: number[] = [];
  const lower = [...image.layers].reverse().join(':');
  for (let i = 0; i < n; i++) {
    const cid = `${image.prefix}-runc-${i}`;
    const dir = path.join(image.work, cid);
    const [rootfs, upper, workdir, run] = ['bundle/rootfs', 'upper', 'work', 'run'].map((d) => path.join(dir, d)) as [string, string, string, string];
    for (const d of [rootfs, upper, workdir, run]) await fs.mkdir(d, { recursive: true });
    await exec('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${workdir}`, rootfs]);
    const config = structuredClone(bundleConfig);
    config.hostname = cid;
    config.linux.cgroupsPath = `/hearth/${cid}`;
    // The spec instance's own folders are gone with it: its socket folder becomes this run's,
    // and any other folder it bound (the empty /run/secrets) an empty one.
    for (const m of config.mounts) {
      if (m.destination === '/run/hearth') m.source = run;
      else if (m.source.startsWith(instanceDir)) {
        m.source = path.join(dir, 'binds', m.destination.replaceAll('/', '_'));
        await fs.mkdir(m.source, { recursive: true });
      }
    }
    // The bootstrap, running as the function's user, creates its socket there.
    await fs.chown(run, config.process.user.uid, config.process.user.gid);
    await fs.writeFile(path.join(dir, 'bundle', 'config.json'), JSON.stringify(config));
    const socket = path.join(run, 'invoke.sock');
    try {
      samples.push(
        await timed(async () => {
          const child = spawn('runc', ['run', '--detach', '--bundle', path.join(dir, 'bundle'), cid], { stdio: 'ignore' });
          const [code] = await once(child, 'exit');
          if (code !== 0) throw new Error(`runc run exited ${code}`);
          await waitForSocket(socket, 10_000);
          await socketRequest(socket, 'world');
        }),
      );
    } finally {
      await exec('runc', ['delete', '--force', cid]).catch(() => {});
      await exec('umount', [rootfs]).catch(() => {});
      await fs.rm(dir, { recursive: true, force: true });
    }
  }
  return samples;
}
