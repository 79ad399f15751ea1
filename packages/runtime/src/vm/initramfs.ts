/**
 * A function image as a microVM's initramfs: the merged layers (an overlay mount, so
 * whiteouts and opaque dirs apply) packed as a newc cpio by `cpio`, followed by a second
 * cpio archive with Hearth's /init and the kernel modules (the kernel unpacks both, the
 * later entries win). Content-addressed: `<home>/vm/initramfs/<sha256>.cpio`, keyed by
 * the layer dirs, the guest init's version and the kernel version; `<sha256>.json` beside
 * it records the unpacked size the VM's memory must hold.
 */
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { HearthError } from '@hearth/core';
import { mountReadOnlyOverlay, unmount } from '../runc/overlay.ts';
import type { GuestInit } from './guest-init.ts';
import type { VmKernel } from './kernel.ts';

/**
 * Uncompressed: under TCG the guest unpacks a 100 MB cpio in a fraction of the time it
 * needs to gunzip it (measured: see README.md); the file costs disk, not boot time.
 */
const FORMAT = 'newc-v1';

export interface Initramfs {
  path: string;
  key: string;
  /** Bytes of the cpio: what the guest unpacks into its RAM. */
  bytes: number;
  /** False when the cached file was used. */
  built: boolean;
}

export function initramfsDir(home: string): string {
  return path.join(path.resolve(home), 'vm', 'initramfs');
}

/** The cache key: layer dirs (path, inode, mtime: a rebuilt dir gets a new key) + init + kernel. */
export async function initramfsKey(layers: string[], init: GuestInit, kernel: VmKernel): Promise<string> {
  const hash = crypto.createHash('sha256').update(`${FORMAT}\0${init.version}\0${kernel.version}\0`);
  for (const layer of layers) {
    const real = await fs.realpath(layer).catch(() => {
      throw new HearthError('NOT_FOUND', `layer dir ${layer} does not exist`);
    });
    const st = await fs.stat(real);
    hash.update(`${real}\0${st.ino}\0${st.mtimeMs}\0`);
  }
  return hash.digest('hex');
}

const building = new Map<string, Promise<Initramfs>>();

/** The cached initramfs for these layers, built first if missing (once per key at a time). */
export async function ensureInitramfs(opts: { home: string; layers: string[]; init: GuestInit; kernel: VmKernel }): Promise<Initramfs> {
  if (opts.layers.length === 0) throw new HearthError('INVALID_ARGUMENT', 'a vm image needs at least one layer');
  const key = await initramfsKey(opts.layers, opts.init, opts.kernel);
  const dir = initramfsDir(opts.home);
  const file = path.join(dir, `${key}.cpio`);
  const meta = path.join(dir, `${key}.json`);
  const cached = await fs.readFile(meta, 'utf8').then((t) => JSON.parse(t) as { bytes: number }, () => undefined);
  if (cached && (await fs.access(file).then(() => true, () => false))) return { path: file, key, bytes: cached.bytes, built: false };

  let pending = building.get(file);
  if (!pending) {
    pending = build(opts, dir, key, file, meta).finally(() => building.delete(file));
    building.set(file, pending);
  }
  return pending;
}

async function build(
  opts: { home: string; layers: string[]; init: GuestInit; kernel: VmKernel },
  dir: string,
  key: string,
  file: string,
  meta: string,
): Promise<Initramfs> {
  const scratch = path.join(dir, `.build-${key.slice(0, 16)}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`);
  const merged = path.join(scratch, 'merged');
  const extra = path.join(scratch, 'extra');
  const tmp = `${file}.tmp-${path.basename(scratch)}`;
  await fs.mkdir(merged, { recursive: true });
  let mounted = false;
  try {
    await mountReadOnlyOverlay({ layers: opts.layers, target: merged, scratch });
    mounted = true;
    await stageHearthFiles(extra, opts.init, opts.kernel);
    const out = createWriteStream(tmp, { flags: 'w' });
    // Character devices are left out: in a one-layer image they can only be stray
    // whiteouts, and the guest's /dev is a devtmpfs anyway.
    await packInto(out, merged, ['find', '.', '!', '-type', 'c', '-print0']);
    await packInto(out, extra, ['find', '.', '-print0']);
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    const { size } = await fs.stat(tmp);
    await fs.rename(tmp, file);
    await fs.writeFile(meta, `${JSON.stringify({ bytes: size, layers: opts.layers, init: opts.init.version, kernel: opts.kernel.version })}\n`);
    return { path: file, key, bytes: size, built: true };
  } finally {
    if (mounted) await unmount(merged).catch(() => undefined);
    await fs.rm(tmp, { force: true });
    await fs.rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** /init, the module list and the modules, and the mount points the init needs. */
async function stageHearthFiles(extra: string, init: GuestInit, kernel: VmKernel): Promise<void> {
  for (const d of ['.hearth/root', '.hearth/lib', 'proc', 'sys', 'dev', 'tmp', 'run']) await fs.mkdir(path.join(extra, d), { recursive: true });
  await fs.chmod(path.join(extra, 'tmp'), 0o1777);
  await fs.copyFile(init.path, path.join(extra, 'init'));
  await fs.chmod(path.join(extra, 'init'), 0o755);
  const list: string[] = [];
  for (const ko of kernel.modules) {
    const name = path.basename(ko);
    await fs.copyFile(ko, path.join(extra, '.hearth/lib', name));
    list.push(`/.hearth/lib/${name}`);
  }
  await fs.writeFile(path.join(extra, '.hearth/modules'), list.map((l) => `${l}\n`).join(''));
}

/** Appends a newc archive of `cwd` (the names `find` prints) to `out`. */
function packInto(out: WriteStream, cwd: string, findArgs: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const find = spawn(findArgs[0]!, findArgs.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const cpio = spawn('cpio', ['--null', '-o', '-H', 'newc', '--quiet'], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    find.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    cpio.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    find.stdout.pipe(cpio.stdin);
    cpio.stdout.pipe(out, { end: false });
    let pending = 2;
    let failed = false;
    const done = (what: string) => (code: number | null) => {
      if (failed) return;
      if (code !== 0) {
        failed = true;
        reject(new HearthError('UNAVAILABLE', `packing the initramfs failed (${what} exited with ${code}): ${stderr.trim()}`));
        return;
      }
      if (--pending === 0) resolve();
    };
    find.on('error', reject);
    cpio.on('error', (err) => reject(new HearthError('UNAVAILABLE', `cannot run cpio (apt-get install cpio): ${err.message}`, { cause: err })));
    find.on('close', done('find'));
    // 'close' fires after cpio's stdout has ended, so its bytes are in `out`'s queue
    cpio.on('close', done('cpio'));
  });
}
