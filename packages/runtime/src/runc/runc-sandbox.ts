/**
 * The container sandbox: an overlay rootfs and an OCI bundle run by runc. Ready when the
 * bootstrap's socket (bind-mounted from <instance>/run) accepts a connection.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { HearthError } from '@hearth/core';
import { InvokeClient } from '../invoke-client.ts';
import { readLogTail } from '../log-tail.ts';
import type { InvokeOptions, Sandbox, SandboxOptions, SandboxRequest, SandboxResponse } from '../sandbox.ts';
import { buildBundleSpec } from './bundle-spec.ts';
import { mountOverlay, unmount } from './overlay.ts';
import { runcDeleteForce, runcKill, runcRunDetached, runcState } from './runc.ts';

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Folder layout of one instance, visible on disk. */
export function instancePaths(home: string, id: string) {
  const dir = path.join(home, 'instances', id);
  return {
    dir,
    bundle: path.join(dir, 'bundle'),
    rootfs: path.join(dir, 'bundle', 'rootfs'),
    upper: path.join(dir, 'upper'),
    work: path.join(dir, 'work'),
    run: path.join(dir, 'run'),
    socket: path.join(dir, 'run', 'invoke.sock'),
    pidFile: path.join(dir, 'container.pid'),
  };
}

function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** `uid[:gid]` numbers only; names would need the image's /etc/passwd, which Hearth's images avoid. */
function resolveUser(user: string | undefined): { uid: number; gid: number } {
  if (!user) return { uid: 0, gid: 0 };
  const m = /^(\d+)(?::(\d+))?$/.exec(user);
  if (m) return { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
  if (user === 'root') return { uid: 0, gid: 0 };
  throw new HearthError('INVALID_ARGUMENT', `image User "${user}" must be numeric (uid or uid:gid)`);
}

class RuncSandbox implements Sandbox {
  readonly kind = 'container' as const;
  readonly id: string;
  private readonly paths: ReturnType<typeof instancePaths>;
  private client?: InvokeClient;
  private logStart = 0;
  private stopping?: Promise<void>;

  constructor(private readonly opts: SandboxOptions) {
    if (!ID.test(opts.id)) throw new HearthError('INVALID_ARGUMENT', `invalid sandbox id "${opts.id}"`);
    this.id = opts.id;
    this.paths = instancePaths(opts.home, opts.id);
  }

  async start(): Promise<void> {
    const p = this.paths;
    try {
      for (const dir of [p.rootfs, p.upper, p.work, p.run]) await fs.mkdir(dir, { recursive: true });
      await fs.mkdir(path.dirname(this.opts.logPath), { recursive: true });
      const spec = buildBundleSpec({
        id: this.id,
        imageConfig: this.opts.imageConfig,
        limits: this.opts.limits,
        env: this.opts.env,
        runDir: p.run,
        user: resolveUser(this.opts.imageConfig.User),
      });
      await fs.writeFile(path.join(p.bundle, 'config.json'), JSON.stringify(spec));
      await mountOverlay({ layers: this.opts.layers, upper: p.upper, work: p.work, target: p.rootfs, scratch: p.dir });
      const log = await fs.open(this.opts.logPath, 'a');
      try {
        this.logStart = (await log.stat()).size;
        const code = await runcRunDetached({ id: this.id, bundle: p.bundle, pidFile: p.pidFile, logFd: log.fd });
        if (code !== 0) throw await this.startFailure(`runc run exited with ${code}`);
      } finally {
        await log.close();
      }
      await this.waitReady();
      this.client = new InvokeClient(p.socket);
    } catch (err) {
      await this.stop().catch(() => {});
      throw err;
    }
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? 10_000);
    let delay = 1;
    for (;;) {
      if (await canConnect(this.paths.socket)) return;
      const state = await runcState(this.id);
      if (!state || state.status === 'stopped') throw await this.startFailure('the function exited before it was ready');
      if (Date.now() > deadline) throw await this.startFailure(`not ready within ${this.opts.readyTimeoutMs ?? 10_000} ms`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 20);
    }
  }

  private async startFailure(reason: string): Promise<HearthError> {
    const tail = await readLogTail(this.opts.logPath, this.logStart);
    return new HearthError('UNAVAILABLE', `function failed to start: ${reason}${tail ? `:\n${tail}` : ''}`);
  }

  async invoke(req: SandboxRequest, opts: InvokeOptions): Promise<SandboxResponse> {
    if (!this.client || this.stopping) throw new HearthError('UNAVAILABLE', `instance ${this.id} is not running`);
    try {
      return await this.client.invoke(req, opts);
    } catch (err) {
      if (err instanceof HearthError && err.code === 'UNAVAILABLE') {
        const tail = await readLogTail(this.opts.logPath, this.logStart, 6);
        throw new HearthError('UNAVAILABLE', `instance died: ${err.message}${tail ? `:\n${tail}` : ''}`, { cause: err });
      }
      throw err;
    }
  }

  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      await this.client?.close();
      await runcKill(this.id, 'KILL').catch(() => {});
      await runcDeleteForce(this.id);
      await unmount(this.paths.rootfs);
      await fs.rm(this.paths.dir, { recursive: true, force: true });
    })());
  }
}

/** A runc container sandbox; nothing runs until start(). */
export function createRuncSandbox(opts: SandboxOptions): Sandbox {
  return new RuncSandbox(opts);
}
