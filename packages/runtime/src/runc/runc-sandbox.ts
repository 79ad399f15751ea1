/**
 * A function instance in a runc container. The instance folder
 * `<home>/instances/<id>/` holds `bundle/{config.json,rootfs}` (rootfs = overlay of the
 * layers), `upper/` and `work/` (the overlay's private half), `run/` (bind-mounted at
 * /run/hearth; the bootstrap's socket appears there), `secrets/` (read-only at
 * /run/secrets), `init.pid`, and for a stem cell `function/` (a shared mount point bound at
 * /function, where specialize() mounts the function's code).
 */
import fs from 'node:fs/promises';
import { constants as fsConstants, openSync, closeSync, statSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HearthError } from '@hearth/core';
import type { InvokeOptions, Sandbox, SandboxLimits, SandboxNetworkInfo, SandboxOptions, SandboxRequest, SandboxResponse, SpecializeOptions } from '../sandbox.ts';
import { InvokeClient } from '../invoke-client.ts';
import { readLogTail } from '../log-tail.ts';
import { buildBundleSpec, cpuQuota, startupCpu } from './bundle-spec.ts';
import { makeSharedMountPoint, mountOverlay, mountReadOnlyOverlay, mountTmpfs, unmount } from './overlay.ts';
import { runcDeleteForce, runcResume, runcRunDetached, runcUpdateCpuQuota } from './runc.ts';
import { resolveImageUser } from './image-user.ts';
import { freezerStatePath, setFrozen } from './freezer.ts';
import { updateLimits, type LimitChange } from './limits.ts';
import { createEgressNetwork, removeEgressNetwork, type EgressNetwork } from './netns.ts';
import { createSecretsDir, validateSecretKeys, writeSecrets } from '../secrets.ts';
import { copyFunctionCode, functionFolders, planFunctionCode, SPECIALIZE_PATH } from '../stem-cell.ts';

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** sun_path is 108 bytes including the NUL. */
const MAX_SOCKET_PATH = 107;
const READY_POLL_MS = 2;
/** Who runs the function when the image sets no User: nobody:nogroup. */
export const DEFAULT_USER = { uid: 65534, gid: 65534 };

/** Where an instance keeps its state on the host (visible on disk, for tools and tests). */
export function instancePaths(home: string, id: string) {
  const dir = path.join(path.resolve(home), 'instances', id);
  return {
    dir,
    bundle: path.join(dir, 'bundle'),
    rootfs: path.join(dir, 'bundle', 'rootfs'),
    upper: path.join(dir, 'upper'),
    work: path.join(dir, 'work'),
    /** A small tmpfs of the instance's own: `run/` (the function's, at /run/hearth) and `host/` (root's only). */
    rt: path.join(dir, 'rt'),
    run: path.join(dir, 'rt', 'run'),
    /** Where the bootstrap creates its socket; the function can replace it, so the worker never connects here. */
    socket: path.join(dir, 'rt', 'run', 'invoke.sock'),
    /** A hard link to the socket the bootstrap made, out of the function's reach: what the worker connects to. */
    hostSocket: path.join(dir, 'rt', 'host', 'invoke.sock'),
    pidFile: path.join(dir, 'init.pid'),
    secrets: path.join(dir, 'secrets'),
    /** Stem cells only: bound at /function; specialize() mounts the function's code here. */
    function: path.join(dir, 'function'),
  };
}

/** Creates (but does not start) a container sandbox. */
export function createRuncSandbox(opts: SandboxOptions): RuncSandbox {
  return new RuncSandbox(opts);
}

export class RuncSandbox implements Sandbox {
  readonly id: string;
  readonly kind = 'container' as const;
  private readonly opts: SandboxOptions;
  readonly dir: string;
  readonly socketPath: string;
  private readonly paths: ReturnType<typeof instancePaths>;
  private client: InvokeClient | undefined;
  private stopping: Promise<void> | undefined;
  /** Log size when this instance started: its own lines come after. */
  private logStart = 0;
  private pid = 0;
  private runDirFd: number | undefined;
  /** The limits in force (specialize() may change them). */
  private limits: SandboxLimits;
  /** The uid:gid the function runs as (resolved at start). */
  private user = { uid: 0, gid: 0 };
  private frozen = false;
  /** The namespace and veth made for `network.egress`, until stop(). */
  private net: EgressNetwork | undefined;
  /** Set when specialize() is called, even if it fails: a stem cell is specialized at most once. */
  private specializeCalled = false;
  private specializeDone = false;
  /** Where start() spent its time, in ms: folders+overlay+config, `runc run`, waiting for the socket. */
  readonly startTimings = { prepareMs: 0, runcMs: 0, readyMs: 0 };

  constructor(opts: SandboxOptions) {
    if (!ID.test(opts.id)) throw new HearthError('INVALID_ARGUMENT', `invalid sandbox id "${opts.id}": use letters, digits, '_', '.', '-'`);
    validateSecretKeys(opts.secrets);
    this.opts = opts;
    this.limits = opts.limits;
    this.id = opts.id;
    this.paths = instancePaths(opts.home, opts.id);
    this.dir = this.paths.dir;
    this.socketPath = this.paths.hostSocket;
  }

  /**
   * The path the worker connects to. A Unix socket path holds at most 107 bytes, and a deep
   * HEARTH_HOME passes that; then the socket is reached through a short /proc/self/fd path
   * of the run folder, which this process keeps open while the instance lives.
   */
  private connectPath(): string {
    if (Buffer.byteLength(this.socketPath) <= MAX_SOCKET_PATH) return this.socketPath;
    this.runDirFd ??= openSync(path.dirname(this.paths.hostSocket), fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    return `/proc/self/fd/${this.runDirFd}/${path.basename(this.socketPath)}`;
  }

  async start(): Promise<void> {
    if (this.stopping) throw new HearthError('UNAVAILABLE', `sandbox ${this.id} was stopped`);
    const t0 = Date.now();
    const p = this.paths;
    try {
      await fs.mkdir(p.dir, { recursive: true });
      await Promise.all([p.upper, p.work, p.rt, p.rootfs].map((d) => fs.mkdir(d, { recursive: true })));
      // The function writes its socket into run/: a tmpfs caps what it can put there (the
      // host's disk is not its /tmp), and host/ beside it, where the worker keeps its link
      // to the socket, is root's alone and never bound into the container.
      await mountTmpfs(p.rt, 'size=1m,nr_inodes=64,mode=0755');
      await fs.mkdir(p.run, { mode: 0o700 });
      await fs.mkdir(path.dirname(p.hostSocket), { mode: 0o700 });
      // an image that names no user runs as nobody, not as root: uid 0 without capabilities
      // still owns root's files in the image
      const user = this.opts.imageConfig.User ? await resolveImageUser(this.opts.imageConfig.User, this.opts.layers) : DEFAULT_USER;
      this.user = user;
      // the bootstrap creates its socket here
      await fs.chown(p.run, user.uid, user.gid);
      await createSecretsDir(p.secrets, user);
      await writeSecrets(p.secrets, this.opts.secrets, user);
      const stemCell = this.opts.stemCell === true;
      if (stemCell) {
        await fs.mkdir(p.function, { recursive: true });
        await makeSharedMountPoint(p.function);
      }
      if (this.opts.network?.egress) this.net = await createEgressNetwork(this.id);
      const spec = buildBundleSpec({
        id: this.id,
        imageConfig: this.opts.imageConfig,
        limits: this.opts.limits,
        env: stemCell ? { ...this.opts.env, HEARTH_STEM_CELL: '1' } : this.opts.env,
        runDir: p.run,
        user,
        secretsDir: p.secrets,
        ...(stemCell ? { functionDir: p.function } : {}),
        ...(this.net ? { netnsPath: this.net.nsPath } : {}),
      });
      await mountOverlay({ layers: this.opts.layers, upper: p.upper, work: p.work, target: p.rootfs, scratch: p.dir });
      await fs.writeFile(path.join(p.bundle, 'config.json'), JSON.stringify(spec));
      await fs.mkdir(path.dirname(this.opts.logPath), { recursive: true });
    } catch (err) {
      await this.stop();
      throw err;
    }

    const t1 = Date.now();
    this.startTimings.prepareMs = t1 - t0;
    const logFd = openSync(this.opts.logPath, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT, 0o644);
    this.logStart = statSync(this.opts.logPath).size;
    let code: number;
    try {
      code = await runcRunDetached({ id: this.id, bundle: p.bundle, pidFile: p.pidFile, logFd });
    } catch (err) {
      await this.stop();
      throw err;
    } finally {
      closeSync(logFd);
    }
    if (code !== 0) await this.failStart(`runc exited with status ${code}`);
    this.pid = Number((await fs.readFile(p.pidFile, 'utf8').catch(() => '0')).trim());
    const t2 = Date.now();
    this.startTimings.runcMs = t2 - t1;

    const readyTimeoutMs = this.opts.readyTimeoutMs ?? 10_000;
    const deadline = t0 + readyTimeoutMs;
    for (;;) {
      if (this.stopping) throw new HearthError('UNAVAILABLE', `sandbox ${this.id} was stopped while starting`);
      if ((await this.linkSocket()) && (await canConnect(this.connectPath()))) break;
      if (!processAlive(this.pid)) await this.failStart('the process exited before listening on /run/hearth/invoke.sock');
      if (Date.now() > deadline) {
        await this.failStart(`not ready after ${readyTimeoutMs} ms (no listener on /run/hearth/invoke.sock)`);
      }
      await sleep(READY_POLL_MS);
    }
    this.startTimings.readyMs = Date.now() - t2;
    await this.endStartupBoost();
    this.client = new InvokeClient(this.connectPath(), this.opts.maxResponseBytes !== undefined ? { maxResponseBytes: this.opts.maxResponseBytes } : {});
  }

  /**
   * Links the socket the bootstrap created to host/, where the function cannot reach: the
   * function owns run/ and could swap its socket for a symlink to any socket on the host,
   * which the worker (root) would follow. A hard link is to the inode, and lstat says it is
   * a socket, not a symlink; a socket the function made can only lead into its sandbox.
   */
  private async linkSocket(): Promise<boolean> {
    const { socket, hostSocket } = this.paths;
    const made = await fs.lstat(socket).catch(() => undefined);
    if (!made?.isSocket()) return false;
    await fs.rm(hostSocket, { force: true });
    try {
      await fs.link(socket, hostSocket);
    } catch {
      return false;
    }
    // swapped between the two calls: the link is to whatever was there then
    const linked = await fs.lstat(hostSocket).catch(() => undefined);
    return linked?.isSocket() === true;
  }

  /** The instance's link to the host with `network.egress`, from start() until stop(); else undefined. */
  get network(): SandboxNetworkInfo | undefined {
    if (!this.net) return undefined;
    const { netns, hostInterface, hostAddress, address, prefixLength } = this.net;
    return { netns, hostInterface, hostAddress, address, prefixLength };
  }

  /** True between pause() and resume(): the processes are frozen and invoke() refuses. */
  get paused(): boolean {
    return this.frozen;
  }

  /**
   * Freezes every process of the instance (cgroup freezer): it keeps its memory, uses no
   * CPU, and its connections stay open. Call only when no invocation is in flight.
   * A second call does nothing. Throws UNAVAILABLE when the instance is not running.
   */
  async pause(): Promise<void> {
    if (!this.client || this.stopping) throw new HearthError('UNAVAILABLE', `sandbox ${this.id} is not running`);
    if (this.frozen) return;
    this.frozen = true;
    try {
      await setFrozen(this.id, true);
    } catch (err) {
      await setFrozen(this.id, false).catch(() => undefined);
      this.frozen = false;
      throw err;
    }
  }

  /** Thaws a paused instance; it answers calls again at once. Does nothing when not paused. */
  async resume(): Promise<void> {
    if (this.stopping) throw new HearthError('UNAVAILABLE', `sandbox ${this.id} was stopped`);
    if (!this.frozen) return;
    await setFrozen(this.id, false);
    this.frozen = false;
  }

  /** True once specialize() succeeded (always false for an instance that is not a stem cell). */
  get specialized(): boolean {
    return this.specializeDone && !this.stopping;
  }

  /**
   * Turns a started stem cell (`stemCell: true`, base image layers only) into an instance of
   * one function: shows the function layers' `function/` folders over the base's at
   * /function, read-only (small code whose own folder replaces the base's is copied into the
   * cell's read-only /function; anything else is mounted as a read-only overlay), writes
   * `secrets`, applies `limits`, then has the bootstrap set `env` and load $HEARTH_HANDLER.
   * Resolves with the time spent placing the code (with secrets and limits: `mountMs`) and
   * loading it (`loadMs`), in ms. At most once per sandbox (CONFLICT after that).
   * INVALID_ARGUMENT when this is no stem cell or a function layer has files outside
   * /function (nothing changed; use a cold start); UNAVAILABLE "function failed to start: ..."
   * when the handler does not load, TIMEOUT when it does not load within readyTimeoutMs: then
   * the sandbox is stopped.
   */
  async specialize(opts: SpecializeOptions): Promise<{ mountMs: number; loadMs: number }> {
    if (!this.opts.stemCell) throw new HearthError('INVALID_ARGUMENT', `sandbox ${this.id} is not a stem cell: only stem cells can be specialized`);
    if (this.specializeCalled) throw new HearthError('CONFLICT', `sandbox ${this.id} is already specialized: a stem cell is specialized once`);
    if (!this.client || this.stopping) throw new HearthError('UNAVAILABLE', `sandbox ${this.id} is not running`);
    if (this.frozen) throw new HearthError('UNAVAILABLE', `sandbox ${this.id} is paused: resume() it before specializing`);
    validateSecretKeys(opts.secrets);
    const code = planFunctionCode(functionFolders(this.opts.layers, { onlyFunction: false }), functionFolders(opts.functionLayers, { onlyFunction: true }));
    this.specializeCalled = true;
    const client = this.client;
    const t0 = performance.now();
    let t1 = t0;
    try {
      // Independent steps, side by side; all settle before a failure stops the sandbox, so
      // no mount lands after its teardown.
      const steps = await Promise.allSettled([
        writeSecrets(this.paths.secrets, opts.secrets, this.user),
        code.kind === 'copy'
          ? Promise.resolve().then(() => copyFunctionCode(code, this.paths.function))
          : mountReadOnlyOverlay({ layers: code.folders, target: this.paths.function, scratch: this.paths.dir }),
        opts.limits ? this.applyLoadLimits(opts.limits) : undefined,
      ]);
      for (const step of steps) if (step.status === 'rejected') throw step.reason;
      if (opts.limits) this.limits = opts.limits;
      t1 = performance.now();
      const res = await this.loadFunction(client, opts.env);
      if (res.status !== 204) {
        const message = parseError(res.body) ?? `the bootstrap answered ${res.status} to the specialization`;
        const tail = await this.logTail();
        throw new HearthError('UNAVAILABLE', `function failed to start: ${message}${tail ? `\n${tail}` : ''}`, { details: { instance: this.id } });
      }
      if (opts.limits && cpuQuota(startupCpu(opts.limits)) !== cpuQuota(opts.limits.cpu)) await updateLimits(this.id, { cpu: opts.limits.cpu });
      this.specializeDone = true;
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }
    return { mountMs: t1 - t0, loadMs: performance.now() - t1 };
  }

  /**
   * The function's limits for loading its handler: its memory and pids, and startupCpu
   * (loading is CPU-bound, like a cold start). Writes only what differs from the cell's.
   */
  private async applyLoadLimits(limits: SandboxLimits): Promise<void> {
    const now = this.limits;
    const change: LimitChange = {};
    if (limits.memoryMb !== now.memoryMb) change.memoryMb = limits.memoryMb;
    // start() left the cell's quota at its `cpu`
    if (cpuQuota(startupCpu(limits)) !== cpuQuota(now.cpu)) change.cpu = startupCpu(limits);
    if ((limits.pids ?? 128) !== (now.pids ?? 128)) change.pids = limits.pids ?? 128;
    if (Object.keys(change).length > 0) await updateLimits(this.id, change);
  }

  private async loadFunction(client: InvokeClient, env: Record<string, string>): Promise<SandboxResponse> {
    const body = Buffer.from(JSON.stringify({ env }));
    const timeoutMs = this.opts.readyTimeoutMs ?? 10_000;
    try {
      return await client.invoke({ method: 'POST', path: SPECIALIZE_PATH, query: '', headers: { 'content-type': 'application/json' }, body }, { timeoutMs });
    } catch (err) {
      if (err instanceof HearthError && err.code === 'UNAVAILABLE') {
        const oom = (await this.oomKilled()) ? ` (out of memory: the limit is ${this.limits.memoryMb} MB)` : '';
        const tail = await this.logTail();
        throw new HearthError('UNAVAILABLE', `function failed to start: the instance died while loading the handler${oom}${tail ? `\n${tail}` : ''}`, { cause: err });
      }
      if (err instanceof HearthError && err.code === 'TIMEOUT') {
        throw new HearthError('TIMEOUT', `function failed to start: the handler did not load within ${timeoutMs} ms`, { cause: err });
      }
      throw err;
    }
  }

  async invoke(req: SandboxRequest, opts: InvokeOptions): Promise<SandboxResponse> {
    if (!this.client || this.stopping) throw new HearthError('UNAVAILABLE', `sandbox ${this.id} is not running`);
    if (this.frozen) throw new HearthError('UNAVAILABLE', `sandbox ${this.id} is paused: resume() it first`);
    try {
      return await this.client.invoke(req, opts);
    } catch (err) {
      if (err instanceof HearthError && err.code === 'UNAVAILABLE') {
        const oom = (await this.oomKilled()) ? ` (out of memory: the limit is ${this.limits.memoryMb} MB)` : '';
        const tail = await this.logTail();
        throw new HearthError('UNAVAILABLE', `instance died${oom}: ${err.message}${tail ? `\n${tail}` : ''}`, { cause: err });
      }
      throw err;
    }
  }

  /** Idempotent: a second call shares the first one's work; after a failure, a call retries. */
  stop(): Promise<void> {
    this.stopping ??= this.teardown().catch((err: unknown) => {
      this.stopping = undefined;
      throw err;
    });
    return this.stopping;
  }

  private async teardown(): Promise<void> {
    await this.client?.close();
    // SIGKILL to the container's init ends the whole pid namespace. Doing it here (not
    // through `runc kill`) saves an exec, and a stopped container spares `delete --force`
    // its 100 ms polling.
    if (this.ownsPid()) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      // a frozen process dies only once thawed
      if (this.frozen) await this.thawForKill();
      for (let i = 0; i < 500 && processAlive(this.pid); i++) await sleep(2);
    } else if (this.frozen) {
      await this.thawForKill();
    }
    this.frozen = false;
    await runcDeleteForce(this.id);
    if (this.net) {
      await removeEgressNetwork(this.net);
      this.net = undefined;
    }
    // an open folder keeps its tmpfs busy
    if (this.runDirFd !== undefined) {
      closeSync(this.runDirFd);
      this.runDirFd = undefined;
    }
    // the rootfs, the socket tmpfs, and for a stem cell the function overlay stacked on its shared bind
    await unmount(this.dir);
    await fs.rm(this.dir, { recursive: true, force: true });
  }

  private async thawForKill(): Promise<void> {
    try {
      await fs.writeFile(freezerStatePath(this.id), 'THAWED');
    } catch {
      await runcResume(this.id).catch(() => undefined);
    }
  }

  /** Lowers the CPU quota from startupCpu to cpu (cgroup v1 file; `runc update` elsewhere). */
  private async endStartupBoost(): Promise<void> {
    const { limits } = this.opts;
    if (cpuQuota(startupCpu(limits)) === cpuQuota(limits.cpu)) return;
    const quota = String(cpuQuota(limits.cpu));
    try {
      await fs.writeFile(`/sys/fs/cgroup/cpu/hearth/${this.id}/cpu.cfs_quota_us`, quota);
    } catch {
      try {
        await runcUpdateCpuQuota(this.id, quota);
      } catch (err) {
        await this.stop().catch(() => undefined);
        throw err;
      }
    }
  }

  /** The pid from runc's pid file is still this container's init (not a reused pid). */
  private ownsPid(): boolean {
    if (!this.pid) return false;
    try {
      return readFileSync(`/proc/${this.pid}/cgroup`, 'utf8').includes(`/hearth/${this.id}\n`);
    } catch {
      return false;
    }
  }

  private async failStart(why: string): Promise<never> {
    const oom = (await this.oomKilled()) ? ` (out of memory: the limit is ${this.limits.memoryMb} MB)` : '';
    const tail = await this.logTail();
    await this.stop().catch(() => undefined);
    throw new HearthError('UNAVAILABLE', `function failed to start: ${why}${oom}${tail ? `\n${tail}` : ''}`, { details: { instance: this.id } });
  }

  private logTail(): Promise<string> {
    return readLogTail(this.opts.logPath, this.logStart);
  }

  /** cgroup v1 counts OOM kills in memory.oom_control; v2 in memory.events. */
  private async oomKilled(): Promise<boolean> {
    for (const file of [`/sys/fs/cgroup/memory/hearth/${this.id}/memory.oom_control`, `/sys/fs/cgroup/hearth/${this.id}/memory.events`]) {
      const text = await fs.readFile(file, 'utf8').catch(() => undefined);
      const m = text?.match(/^oom_kill (\d+)/m);
      if (m) return Number(m[1]) > 0;
    }
    return false;
  }
}

/** The `error` of a JSON error body, if it is one. */
function parseError(body: Buffer): string | undefined {
  try {
    const value = JSON.parse(body.toString('utf8')) as { error?: unknown };
    return typeof value.error === 'string' ? value.error : undefined;
  } catch {
    return undefined;
  }
}

function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(socketPath);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** The container's init, reparented to the host's init once runc exits; gone or a zombie = exited. */
function processAlive(pid: number): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // a zombie still answers kill(pid, 0)
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
