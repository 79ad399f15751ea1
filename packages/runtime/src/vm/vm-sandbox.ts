/**
 * A function instance in a qemu microVM. The guest boots a Debian cloud kernel with the
 * function image as its initramfs (cached by content, see initramfs.ts); its /init
 * (bootstraps/vm/hearth-vm-init.c) runs the image's entrypoint and bridges a
 * virtio-serial port to the bootstrap's socket, and qemu serves that port on the host as
 * `<home>/instances/<id>/run/invoke.sock`. The host speaks the same invoke protocol over
 * it as to a container, one request at a time (a virtio-serial port is one byte stream).
 *
 * start(): initramfs (cached) → accelerator (probed once per process) → qemu → the host
 * connects to the port and sends the instance config (argv, env, cwd, memory limit) →
 * the guest answers READY once the function listens → the host closes that connection
 * and invokes over fresh ones.
 */
import fs from 'node:fs/promises';
import { statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from 'undici';
import { HearthError } from '@hearth/core';
import type { InvokeOptions, Sandbox, SandboxOptions, SandboxRequest, SandboxResponse } from '../sandbox.ts';
import { InvokeClient } from '../invoke-client.ts';
import { readLogTail } from '../log-tail.ts';
import { mergeEnv } from '../runc/bundle-spec.ts';
import { resolveImageUser } from '../runc/image-user.ts';
import { probeAccel } from './accel.ts';
import { ensureGuestInit } from './guest-init.ts';
import { ensureInitramfs } from './initramfs.ts';
import type { VmKernel } from './kernel.ts';
import { QEMU, qemuArgs, type VmAccel } from './qemu.ts';

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** sun_path is 108 bytes including the NUL; qemu needs the real path. */
const MAX_SOCKET_PATH = 107;
/**
 * The guest kernel's own share beyond the function's memory and its unpacked rootfs
 * (64 MB was too little to unpack a 103 MB image next to its cpio: "Kernel panic").
 */
const GUEST_OVERHEAD_MB = 96;
/** Booting under TCG takes seconds: the default ready deadline is longer than a container's. */
export const VM_READY_TIMEOUT_MS = 60_000;
const READY = 'HEARTH1 READY\n';

export interface VmSandboxOptions extends SandboxOptions {
  /** The guest kernel (loadVmKernel(home) finds the one infra/images/vm-kernel.ts fetched). */
  kernel: VmKernel;
  /** Default: probeAccel() (KVM when a probe guest runs under it, else TCG). */
  accel?: VmAccel;
}

/** Where a VM instance keeps its state on the host. */
export function vmInstancePaths(home: string, id: string) {
  const dir = path.join(path.resolve(home), 'instances', id);
  return { dir, run: path.join(dir, 'run'), socket: path.join(dir, 'run', 'invoke.sock'), pidFile: path.join(dir, 'qemu.pid') };
}

/** Creates (but does not start) a microVM sandbox. */
export function createVmSandbox(opts: VmSandboxOptions): VmSandbox {
  return new VmSandbox(opts);
}

export class VmSandbox implements Sandbox {
  readonly id: string;
  readonly kind = 'vm' as const;
  readonly dir: string;
  readonly socketPath: string;
  /** The accelerator this instance runs under; set by start() (the `hearth.accel` span attribute). */
  accel: VmAccel | undefined;
  /** The guest's RAM: the memory limit + the unpacked image + the kernel's share. */
  vmMemoryMb = 0;

  /** The guest's RAM: all of it is the host's to give, whatever the function uses. */
  get footprintMb(): number {
    return this.vmMemoryMb;
  }
  /**
   * Where the last start() spent its time (ms): the initramfs (0-ish when cached; `initramfsBuilt`
   * says whether it was packed now), the accelerator probe, qemu until its socket accepts, and the
   * boot until the function listens inside the guest.
   */
  readonly startTimings = { initramfsMs: 0, initramfsBuilt: false, accelMs: 0, qemuSpawnMs: 0, bootMs: 0 };
  private readonly opts: VmSandboxOptions;
  private readonly paths: ReturnType<typeof vmInstancePaths>;
  private qemu: ChildProcess | undefined;
  private qemuExit: Promise<void> | undefined;
  private qemuStderr = '';
  private client: InvokeClient | undefined;
  private stopping: Promise<void> | undefined;
  /** One request at a time: the port is one byte stream and qemu serves one connection. */
  private queue: Promise<unknown> = Promise.resolve();
  private logStart = 0;

  constructor(opts: VmSandboxOptions) {
    if (!ID.test(opts.id)) throw new HearthError('INVALID_ARGUMENT', `invalid sandbox id "${opts.id}": use letters, digits, '_', '.', '-'`);
    this.opts = opts;
    this.id = opts.id;
    this.paths = vmInstancePaths(opts.home, opts.id);
    this.dir = this.paths.dir;
    this.socketPath = this.paths.socket;
    if (Buffer.byteLength(this.socketPath) > MAX_SOCKET_PATH) {
      throw new HearthError('INVALID_ARGUMENT', `the vm socket path ${this.socketPath} is longer than ${MAX_SOCKET_PATH} bytes: use a shorter HEARTH_HOME`);
    }
    if (/[,\n]/.test(this.dir) || /[,\n]/.test(opts.logPath)) {
      throw new HearthError('INVALID_ARGUMENT', `paths given to qemu may not contain ',' (${this.dir}, ${opts.logPath})`);
    }
  }

  async start(): Promise<void> {
    if (this.stopping) throw new HearthError('UNAVAILABLE', `sandbox ${this.id} was stopped`);
    const { opts, paths } = this;
    const t0 = Date.now();
    let frame: Buffer;
    let initrd: string;
    try {
      await fs.mkdir(paths.run, { recursive: true });
      await fs.mkdir(path.dirname(opts.logPath), { recursive: true });
      const init = await ensureGuestInit(opts.home);
      const image = await ensureInitramfs({ home: opts.home, layers: opts.layers, init, kernel: opts.kernel });
      initrd = image.path;
      this.startTimings.initramfsBuilt = image.built;
      const t1 = Date.now();
      this.startTimings.initramfsMs = t1 - t0;
      this.accel = opts.accel ?? (await probeAccel({ home: opts.home, kernel: opts.kernel }));
      this.startTimings.accelMs = Date.now() - t1;
      const imageMb = Math.ceil(image.bytes / 2 ** 20);
      // the cpio and what it unpacks to share RAM until the kernel frees the cpio
      this.vmMemoryMb = Math.max(opts.limits.memoryMb, imageMb) + imageMb + GUEST_OVERHEAD_MB;
      frame = await this.configFrame();
      await fs.appendFile(opts.logPath, '');
      this.logStart = statSync(opts.logPath).size;
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }

    const t2 = Date.now();
    const args = qemuArgs({
      accel: this.accel,
      kernel: opts.kernel.vmlinuz,
      initrd,
      memoryMb: this.vmMemoryMb,
      cpus: Math.max(1, Math.ceil(opts.limits.cpu)),
      socketPath: paths.socket,
      consolePath: opts.logPath,
      // HEARTH_VM_DEBUG=1: the guest init logs when each boot phase ends
      append: process.env.HEARTH_VM_DEBUG === '1' ? ['hearth.debug'] : [],
    });
    const qemu = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.qemu = qemu;
    this.qemuExit = new Promise((resolve) => qemu.once('close', () => resolve()));
    qemu.stderr!.on('data', (d: Buffer) => {
      if (this.qemuStderr.length < 4096) this.qemuStderr += d.toString();
    });
    qemu.once('error', (err) => (this.qemuStderr += `cannot run ${QEMU}: ${err.message} (apt-get install qemu-system-x86)`));
    if (qemu.pid) await fs.writeFile(paths.pidFile, `${qemu.pid}\n`).catch(() => undefined);

    const readyTimeoutMs = opts.readyTimeoutMs ?? VM_READY_TIMEOUT_MS;
    const deadline = t2 + readyTimeoutMs;
    let sock: net.Socket | undefined;
    for (;;) {
      if (this.stopping) throw new HearthError('UNAVAILABLE', `sandbox ${this.id} was stopped while starting`);
      if (this.exited()) await this.failStart(`qemu exited (${this.exitReason()})`);
      sock = await connect(paths.socket);
      if (sock) break;
      if (Date.now() > deadline) await this.failStart(`qemu did not open ${paths.socket} within ${readyTimeoutMs} ms`);
      await sleep(5);
    }
    const t3 = Date.now();
    this.startTimings.qemuSpawnMs = t3 - t2;

    const outcome = await handshake(sock, frame, deadline - Date.now());
    sock.destroy();
    if (outcome !== 'ready') {
      if (outcome === 'timeout') await this.failStart(`not ready after ${readyTimeoutMs} ms (no listener on /run/hearth/invoke.sock)`);
      await sleep(50); // let qemu finish writing the console
      const panicked = /Kernel panic/.test(await this.logTail());
      await this.failStart(panicked ? `the guest kernel panicked (VM RAM ${this.vmMemoryMb} MB)` : 'the function exited before listening on /run/hearth/invoke.sock');
    }
    this.startTimings.bootMs = Date.now() - t3;
    // qemu serves the port to one client at a time: a second connection would wait forever in its backlog.
    this.client = new InvokeClient(paths.socket, { connections: 1 });
  }

  invoke(req: SandboxRequest, opts: InvokeOptions): Promise<SandboxResponse> {
    const turn = this.queue.then(() => this.invokeNow(req, opts));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async invokeNow(req: SandboxRequest, opts: InvokeOptions): Promise<SandboxResponse> {
    if (!this.client || this.stopping) throw new HearthError('UNAVAILABLE', `sandbox ${this.id} is not running`);
    try {
      return await this.client.invoke(req, opts);
    } catch (err) {
      if (err instanceof HearthError && err.code === 'UNAVAILABLE') {
        // the guest says why on its console, then powers off
        await Promise.race([this.qemuExit, sleep(1000)]);
        const tail = await this.logTail();
        const oom = /hearth-vm: .*\(out of memory\)/.test(tail) ? ` (out of memory: the limit is ${this.opts.limits.memoryMb} MB)` : '';
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
    if (this.qemu && !this.exited()) {
      this.qemu.kill('SIGKILL');
    }
    if (this.qemu) await this.qemuExit;
    await fs.rm(this.dir, { recursive: true, force: true });
  }

  /** What the guest init reads first on the port (see hearth-vm-init.c). */
  private async configFrame(): Promise<Buffer> {
    const { imageConfig, limits, env, layers } = this.opts;
    const argv = [...(imageConfig.Entrypoint ?? []), ...(imageConfig.Cmd ?? [])];
    if (argv.length === 0) throw new HearthError('INVALID_ARGUMENT', 'the image has neither Entrypoint nor Cmd: nothing to run');
    const user = await resolveImageUser(imageConfig.User, layers);
    const fields = [
      String(limits.memoryMb * 2 ** 20),
      imageConfig.WorkingDir || '/',
      String(user.uid),
      String(user.gid),
      String(argv.length),
      ...argv,
      ...mergeEnv(imageConfig.Env, env),
    ];
    for (const f of fields) {
      if (f.includes('\0')) throw new HearthError('INVALID_ARGUMENT', `a NUL byte in the function's argv or env: ${JSON.stringify(f.slice(0, 40))}`);
    }
    const body = Buffer.from(fields.map((f) => `${f}\0`).join(''));
    return Buffer.concat([Buffer.from(`HEARTH1 ${body.length}\n`), body]);
  }

  private exited(): boolean {
    return !this.qemu || this.qemu.exitCode !== null || this.qemu.signalCode !== null || this.qemuStderr.startsWith('cannot run');
  }

  private exitReason(): string {
    const q = this.qemu;
    const how = q?.signalCode ? `signal ${q.signalCode}` : `status ${q?.exitCode ?? '?'}`;
    return `${how}${this.qemuStderr.trim() ? `: ${this.qemuStderr.trim()}` : ''}`;
  }

  private async failStart(why: string): Promise<never> {
    const tail = await this.logTail();
    await this.stop().catch(() => undefined);
    const oom = /hearth-vm: .*\(out of memory\)/.test(tail) ? ` (out of memory: the limit is ${this.opts.limits.memoryMb} MB)` : '';
    throw new HearthError('UNAVAILABLE', `function failed to start: ${why}${oom}${tail ? `\n${tail}` : ''}`, { details: { instance: this.id } });
  }

  private logTail(): Promise<string> {
    return readLogTail(this.opts.logPath, this.logStart);
  }
}

function connect(socketPath: string): Promise<net.Socket | undefined> {
  return new Promise((resolve) => {
    const sock = net.connect(socketPath);
    sock.once('connect', () => {
      sock.removeAllListeners('error');
      sock.on('error', () => undefined);
      resolve(sock);
    });
    sock.once('error', () => resolve(undefined));
  });
}

/** Sends the config and waits for the guest's READY line, the end of the stream, or the deadline. */
function handshake(sock: net.Socket, frame: Buffer, timeoutMs: number): Promise<'ready' | 'closed' | 'timeout'> {
  return new Promise((resolve) => {
    let seen = '';
    const timer = setTimeout(() => finish('timeout'), Math.max(0, timeoutMs));
    const finish = (r: 'ready' | 'closed' | 'timeout') => {
      clearTimeout(timer);
      sock.removeAllListeners('data');
      resolve(r);
    };
    sock.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
      if (seen.includes(READY)) finish('ready');
    });
    sock.once('close', () => finish('closed'));
    sock.write(frame);
  });
}
