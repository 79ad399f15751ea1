/**
 * The floors Hearth's paths are measured against, in the same run, on the same image,
 * outside Hearth's gateway, queue and pool:
 *  - `runcRun`: `runc run` of the instance's own bundle until the bootstrap answers one
 *    request on its socket (what any container start of this image costs);
 *  - `direct`: an HTTP request straight to a running instance's socket.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureLayersUnpacked, openContentStore, parseReference, pullImage, RegistryClient } from '@hearth/oci';
import { createRuncSandbox, instancePaths } from '@hearth/runtime';

const exec = promisify(execFile);

/** Times one call; a call that takes over a minute is a bug, not a sample. */
export async function timed(fn: () => Promise<unknown>, onHang: () => string = () => ''): Promise<number> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`a call hung for 60 s\n${onHang()}`)), 60_000);
  });
  try {
    await Promise.race([fn(), hang]);
  } finally {
    clearTimeout(timer);
  }
  return performance.now() - t0;
}

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


/** `n` runs of `runc run` and `warmN` direct socket requests, for the image `imageRef` (ref@digest). */
export async function measureFloors(opts: { imageRef: string; work: string; prefix: string; n: number; warmN: number }): Promise<{ runcRun: number[]; direct: number[] }> {
  const { work, prefix } = opts;
  const N = opts.n;
  const WARM_N = opts.warmN;
  const warmRef = opts.imageRef;
  // Floors, on the same image, outside Hearth's queue and gateway.
  const home = path.join(work, 'floor-home');
  const store = openContentStore(path.join(home, 'content'));
  const ref = parseReference(warmRef);
  const image = await pullImage({ store, client: new RegistryClient({ registry: ref.registry, insecure: true }), ref });
  const layers = await ensureLayersUnpacked({ home, store, image });
  const id = `${prefix}-floor`;
  const sandbox = createRuncSandbox({
    home,
    id,
    layers,
    imageConfig: (image.config as { config?: object }).config ?? {},
    limits: { memoryMb: 128, cpu: 0.5 },
    logPath: path.join(work, 'floor.log'),
  });
  await sandbox.start();
  const instanceDir = path.join(home, 'instances', id);
  const socket = instancePaths(home, id).hostSocket;
  const direct: number[] = [];
  await socketRequest(socket, 'warmup');
  for (let i = 0; i < WARM_N; i++) direct.push(await timed(() => socketRequest(socket, 'world')));
  const bundleConfig = JSON.parse(await fs.readFile(path.join(instanceDir, 'bundle', 'config.json'), 'utf8'));
  await sandbox.stop();

  const runcRun: number[] = [];
  const lower = [...layers].reverse().join(':');
  for (let i = 0; i < N; i++) {
    const cid = `${prefix}-runc-${i}`;
    const dir = path.join(work, cid);
    const [rootfs, upper, workdir, run] = ['bundle/rootfs', 'upper', 'work', 'run'].map((d) => path.join(dir, d));
    for (const d of [rootfs!, upper!, workdir!, run!]) await fs.mkdir(d, { recursive: true });
    await exec('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${workdir}`, rootfs!]);
    const config = structuredClone(bundleConfig);
    config.hostname = cid;
    config.linux.cgroupsPath = `/hearth/${cid}`;
    // The instance's own folders are gone with it: its socket folder becomes this run's, and
    // any other folder it bound (the empty /run/secrets) an empty one.
    for (const m of config.mounts as { destination: string; source: string }[]) {
      if (m.destination === '/run/hearth') m.source = run!;
      else if (m.source.startsWith(instanceDir)) {
        m.source = path.join(dir, 'binds', m.destination.replaceAll('/', '_'));
        await fs.mkdir(m.source, { recursive: true });
      }
    }
    // the bootstrap, running as the function's user, creates its socket there
    await fs.chown(run!, config.process.user.uid, config.process.user.gid);
    await fs.writeFile(path.join(dir, 'bundle', 'config.json'), JSON.stringify(config));
    try {
      runcRun.push(
        await timed(async () => {
          const child = spawn('runc', ['run', '--detach', '--bundle', path.join(dir, 'bundle'), cid], { stdio: 'ignore' });
          const [code] = await once(child, 'exit');
          if (code !== 0) throw new Error(`runc run exited ${code}`);
          await waitForSocket(path.join(run!, 'invoke.sock'), 10000);
          await socketRequest(path.join(run!, 'invoke.sock'), 'world');
        }),
      );
    } finally {
      await exec('runc', ['delete', '--force', cid]).catch(() => {});
      await exec('umount', [rootfs!]).catch(() => {});
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  return { runcRun, direct };
}
