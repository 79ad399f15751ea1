/**
 * The references a startup is read against, measured in the same run on the same image:
 * `runc run` of the bundle Hearth's runc driver writes, and `docker run` of the image pulled
 * from the registry where a Docker engine answers. Both need this machine to be the worker's
 * (root, runc, the registry reachable); a reference that cannot run says why instead.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { prepareFloorImage, runcRunFloor, socketRequest, SOCKET_PATH, waitForSocket } from '@hearth/runtime';

const exec = promisify(execFile);

export type Reference = { samplesMs: number[]; note: string } | { skipped: string };

export interface ReferenceOptions {
  /** `ref@sha256:…` */
  image: string;
  runs: number;
  limits: { memoryMb: number; cpu: number };
  /** Names every container, folder and cgroup the references make, so they can be told apart and removed. */
  prefix: string;
}

/** `runc run` until the bootstrap answers one request on its socket, `runs` times. */
export async function runcRunReference(opts: ReferenceOptions): Promise<Reference> {
  if (process.getuid?.() !== 0) return { skipped: 'runc run needs root on the worker machine' };
  try {
    await exec('runc', ['--version']);
  } catch {
    return { skipped: 'runc is not installed here' };
  }
  const work = await fs.mkdtemp(path.join(os.tmpdir(), `${opts.prefix}-`));
  try {
    const image = await prepareFloorImage({ imageRef: opts.image, work, prefix: opts.prefix, limits: opts.limits });
    return { samplesMs: await runcRunFloor(image, opts.runs), note: 'runc run of the bundle Hearth writes, until the bootstrap answers one request' };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** Where a Docker engine answers (DOCKER_HOST or its default socket), its version; else why not. */
async function dockerServer(): Promise<{ version: string } | { skipped: string }> {
  try {
    const { stdout } = await exec('docker', ['version', '--format', '{{.Server.Version}}'], { timeout: 5000 });
    return { version: stdout.trim() };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') return { skipped: 'no docker command here' };
    return { skipped: `no Docker engine answers (${(e.stderr ?? e.message).trim().split('\n')[0]})` };
  }
}

/**
 * `docker run` of the image until its bootstrap answers one request on a socket in a folder
 * bound at /run/hearth, `runs` times: no network, the function's memory and cpu, nobody's uid.
 */
export async function dockerRunReference(opts: ReferenceOptions): Promise<Reference> {
  const server = await dockerServer();
  if ('skipped' in server) return server;
  try {
    await exec('docker', ['pull', '--quiet', opts.image], { timeout: 120_000 });
  } catch (err) {
    return { skipped: `docker pull ${opts.image} failed: ${((err as { stderr?: string }).stderr ?? String(err)).trim().split('\n')[0]}` };
  }
  const samplesMs: number[] = [];
  for (let i = 0; i < opts.runs; i++) {
    const name = `${opts.prefix}-docker-${i}`;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), `${name}-`));
    await fs.chmod(dir, 0o777);
    try {
      const t0 = performance.now();
      const child = spawn(
        'docker',
        ['run', '--detach', '--rm', '--name', name, '--network', 'none', '--user', '65534:65534', '--memory', `${opts.limits.memoryMb}m`, '--cpus', String(opts.limits.cpu),
          '--env', `HEARTH_SOCKET=${SOCKET_PATH}`, '--volume', `${dir}:${path.dirname(SOCKET_PATH)}`, opts.image],
        { stdio: 'ignore' },
      );
      const [code] = await once(child, 'exit');
      if (code !== 0) throw new Error(`docker run exited ${code}`);
      const socket = path.join(dir, path.basename(SOCKET_PATH));
      await waitForSocket(socket, 30_000);
      await socketRequest(socket, 'bench');
      samplesMs.push(performance.now() - t0);
    } finally {
      await exec('docker', ['rm', '--force', name]).catch(() => undefined);
      await fs.rm(dir, { recursive: true, force: true });
    }
  }
  return { samplesMs, note: `docker run (engine ${server.version}) of the image from the registry, until the bootstrap answers one request` };
}
