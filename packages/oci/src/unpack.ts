import fs, { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { HearthError } from '@hearth/core';
import type { ContentStore } from './content-store.ts';
import { Digester } from './digest.ts';
import { layerCompression } from './media-types.ts';

const run = promisify(execFile);
const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const isRoot = process.getuid?.() === 0;

export interface UnpackLayerOptions {
  store: ContentStore;
  /** Digest of the (compressed) layer blob in the store. */
  digest: string;
  mediaType: string;
  /** An existing folder, normally empty; entries are written inside it and nowhere else. */
  dest: string;
  /** When given, the uncompressed tar must hash to it (the config's diff_id). */
  diffId?: string;
  /** Caps against tar bombs; defaults in DEFAULT_UNPACK_LIMITS. */
  limits?: Partial<UnpackLimits>;
}

/** How much one layer may unpack to. Past either limit unpacking stops with TOO_LARGE. */
export interface UnpackLimits {
  /** Bytes of uncompressed tar (headers and contents), which bounds what lands on disk. */
  maxUnpackedBytes: number;
  /** Tar entries (files, folders, links, whiteouts, ...). */
  maxEntries: number;
}

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = { maxUnpackedBytes: 4 * 1024 ** 3, maxEntries: 200_000 };

/**
 * Unpacks one layer blob from the store into `dest`, as a lower dir for overlayfs:
 *
 * - gzip, zstd (through the `zstd` program) and plain tar, told apart by magic bytes;
 * - modes, numeric owners (when running as root), mtimes, symlinks and hardlinks kept;
 * - OCI whiteouts become overlay whiteouts: `.wh.NAME` a 0:0 character device NAME (made
 *   with `mknod`), `.wh..wh..opq` the xattr trusted.overlay.opaque=y on its folder (`setfattr`);
 * - a leading `/` or `./` is dropped (absolute paths are relative to the layer root, as
 *   Docker and containerd read them);
 * - refused with INVALID_ARGUMENT, never stripped: a path with a `..` component, an entry
 *   whose parent is a symlink (or a file), a hardlink whose target has `..`, runs through a
 *   symlink, or is not in this layer;
 * - symlinks are created as they are, whatever they point at: they resolve inside the
 *   container, and nothing is ever written through one;
 * - device files and FIFOs other than whiteouts are skipped (a runtime provides /dev);
 *   other exotic entry types (sparse files, …) are refused; xattrs in PAX headers are not kept.
 *
 * - a tar bomb stops with TOO_LARGE: more uncompressed bytes than `limits.maxUnpackedBytes`
 *   (4 GiB) or more entries than `limits.maxEntries` (200 000), counted as the stream arrives.
 *
 * On error `dest` is left half-written: unpack into a scratch folder (ensureLayersUnpacked does).
 */
export async function unpackLayer(opts: UnpackLayerOptions): Promise<void> {
  const blobPath = opts.store.path(opts.digest);
  const dest = path.resolve(opts.dest);
  const label = `layer ${opts.digest}`;
  const compression = await sniffCompression(blobPath, opts.mediaType);

  let source: Readable;
  let child: ReturnType<typeof spawn> | undefined;
  if (compression === 'zstd') {
    child = spawn('zstd', ['-dcq', blobPath], { stdio: ['ignore', 'pipe', 'ignore'] });
    source = child.stdout!;
  } else if (compression === 'gzip') {
    // Big chunks: fewer thread-pool round trips per megabyte.
    source = createReadStream(blobPath, { highWaterMark: 1024 * 1024 }).pipe(createGunzip({ chunkSize: 256 * 1024 }));
  } else {
    source = createReadStream(blobPath, { highWaterMark: 1024 * 1024 });
  }

  const { maxUnpackedBytes, maxEntries } = { ...DEFAULT_UNPACK_LIMITS, ...opts.limits };
  const digester = new Digester();
  const tap = new PassThrough();
  const writer = new LayerWriter(dest, label);
  const parser = new Parser({ strict: true });
  let entries = 0;

  await new Promise<void>((resolve, reject) => {
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      writer.abort();
      source.destroy();
      tap.destroy();
      child?.kill();
      reject(asHearthError(err, label));
    };
    tap.on('data', (c: Buffer) => {
      digester.update(c);
      if (digester.size > maxUnpackedBytes) {
        fail(new HearthError('TOO_LARGE', `refused ${label}: it unpacks to more than the limit of ${maxUnpackedBytes} bytes`));
      }
    });
    let chain = Promise.resolve();
    parser.on('entry', (entry: ReadEntry) => {
      if (++entries > maxEntries) {
        entry.resume();
        return fail(new HearthError('TOO_LARGE', `refused ${label}: it has more than the limit of ${maxEntries} entries`));
      }
      chain = chain.then(async () => {
        if (failed) return void entry.resume();
        try {
          await writer.write(entry);
        } catch (err) {
          entry.resume();
          fail(err);
        }
      });
    });
    parser.on('error', fail);
    parser.on('end', () => {
      chain.then(() => (failed ? undefined : finished(tap))).then(() => !failed && resolve(), fail);
    });
    source.on('error', fail);
    tap.on('error', fail);
    child?.on('exit', (code) => code && fail(new HearthError('INVALID_ARGUMENT', `${label}: zstd failed with exit code ${code}`)));
    child?.on('error', (err) => fail(new HearthError('UNAVAILABLE', `${label}: cannot run zstd: ${err.message}`)));
    source.pipe(tap).pipe(parser as unknown as NodeJS.WritableStream);
  });

  await writer.finish();
  if (opts.diffId && digester.digest() !== opts.diffId) {
    throw new HearthError('INVALID_ARGUMENT', `${label} uncompresses to ${digester.digest()}, but the image config says ${opts.diffId}`);
  }
}

/**
 * Writes tar entries under a root, one at a time, refusing anything that would escape it.
 * File system calls are synchronous on purpose: each is a few microseconds against the page
 * cache, and a thread-pool round trip per call made unpacking 3-4× slower than GNU tar. The
 * event loop still runs between entries and between data chunks.
 */
class LayerWriter {
  readonly #root: string;
  readonly #label: string;
  /** Folders known to be real (not symlinked) folders inside the root. */
  readonly #dirs = new Set<string>();
  readonly #dirTimes: [string, Date][] = [];
  readonly #opaque = new Set<string>();
  /** Folders with the setgid bit: files made in them take the folder's group, so chown always. */
  readonly #setgidDirs = new Set<string>();
  readonly #umask = process.umask();
  #aborted = false;

  constructor(root: string, label: string) {
    this.#root = root;
    this.#label = label;
    this.#dirs.add(root);
  }

  abort(): void {
    this.#aborted = true;
  }

  async write(entry: ReadEntry): Promise<void> {
    if (this.#aborted) return void entry.resume();
    const parts = this.#components(entry.path, entry.path);
    const name = parts[parts.length - 1];
    const type = entry.type;

    if (name === undefined) {
      // The layer's root folder ("./"): its mode and owner become the root's.
      entry.resume();
      if (type === 'Directory') this.#setDirMeta(this.#root, entry);
      return;
    }
    const parent = this.#ensureParents(parts.slice(0, -1), entry.path);

    if (name.startsWith(WHITEOUT)) {
      entry.resume();
      if (name === OPAQUE) {
        this.#opaque.add(parent);
      } else if (!name.startsWith(`${WHITEOUT}${WHITEOUT}`)) {
        const hidden = name.slice(WHITEOUT.length);
        if (!hidden || hidden === '.' || hidden === '..') throw this.#refuse(`whiteout ${JSON.stringify(entry.path)} names no file`);
        const target = path.join(parent, hidden);
        this.#clear(target);
        await run('mknod', ['-m', '0', target, 'c', '0', '0']).catch((err: Error) => {
          throw new HearthError('INTERNAL', `${this.#label}: cannot create whiteout ${target}: ${err.message.split('\n')[0]}`);
        });
      }
      // Other .wh..wh.* names are aufs bookkeeping that overlayfs has no use for.
      return;
    }

    const target = path.join(parent, name);
    switch (type) {
      case 'Directory': {
        entry.resume();
        this.#create(target, () => fs.mkdirSync(target, { mode: 0o700 }), true);
        this.#dirs.add(target);
        if (((entry.mode ?? 0) & 0o2000) !== 0) this.#setgidDirs.add(target);
        this.#setDirMeta(target, entry);
        return;
      }
      case 'File':
      case 'OldFile':
      case 'ContiguousFile': {
        const mode = (entry.mode ?? 0o644) & 0o7777;
        const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
        const fd = this.#create(target, () => fs.openSync(target, flags, mode & 0o777))!;
        try {
          for await (const chunk of entry) writeAll(fd, chunk as Buffer);
          // A new file is already root's (unless its folder is setgid) and has its mode,
          // unless umask or special bits interfere: skip the calls that change nothing.
          const uid = entry.uid ?? 0;
          const gid = entry.gid ?? 0;
          const chowned = isRoot && (uid !== 0 || gid !== 0 || this.#setgidDirs.has(parent));
          if (chowned) fs.fchownSync(fd, uid, gid);
          if (chowned || (mode & 0o777 & ~this.#umask) !== mode) fs.fchmodSync(fd, mode);
          if (entry.mtime) fs.futimesSync(fd, entry.mtime, entry.mtime);
        } finally {
          fs.closeSync(fd);
        }
        return;
      }
      case 'SymbolicLink': {
        entry.resume();
        const linkpath = entry.linkpath;
        if (linkpath === undefined || linkpath === '') throw this.#refuse(`symlink ${JSON.stringify(entry.path)} has no target`);
        this.#create(target, () => fs.symlinkSync(linkpath, target));
        if (isRoot) fs.lchownSync(target, entry.uid ?? 0, entry.gid ?? 0);
        if (entry.mtime) fs.lutimesSync(target, entry.mtime, entry.mtime);
        return;
      }
      case 'Link': {
        entry.resume();
        const source = this.#hardlinkSource(entry);
        this.#create(target, () => fs.linkSync(source, target));
        return;
      }
      case 'CharacterDevice':
      case 'BlockDevice':
      case 'FIFO':
        entry.resume();
        return;
      default:
        entry.resume();
        throw this.#refuse(`entry ${JSON.stringify(entry.path)} has unsupported type ${type}`);
    }
  }

  /** Applies opaque markers and folder times (after their contents were written). */
  async finish(): Promise<void> {
    const opaque = [...this.#opaque];
    for (const dir of opaque) {
      if (!fs.lstatSync(dir).isDirectory()) throw this.#refuse(`opaque marker in ${dir}, which is not a folder`);
    }
    for (let i = 0; i < opaque.length; i += 100) {
      await run('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', '--', ...opaque.slice(i, i + 100)]).catch((err: Error) => {
        throw new HearthError('INTERNAL', `${this.#label}: cannot mark folders opaque (is setfattr from the attr package installed?): ${err.message.split('\n')[0]}`);
      });
    }
    for (const [dir, time] of this.#dirTimes.reverse()) fs.utimesSync(dir, time, time);
  }

  #refuse(why: string): HearthError {
    return new HearthError('INVALID_ARGUMENT', `refused ${this.#label}: ${why}`);
  }

  /** Path components without "", "." and a leading "/"; any ".." is refused. */
  #components(p: string, shown: string): string[] {
    const parts = p.split('/').filter((c) => c !== '' && c !== '.');
    if (parts.includes('..')) throw this.#refuse(`path ${JSON.stringify(shown)} has a ".." component`);
    if (parts.some((c) => c.includes('\0'))) throw this.#refuse(`path ${JSON.stringify(shown)} has a NUL byte`);
    return parts;
  }

  /** Makes sure each ancestor is a real folder inside the root, creating missing ones. */
  #ensureParents(parts: string[], shown: string): string {
    let dir = this.#root;
    for (const part of parts) {
      dir = path.join(dir, part);
      if (this.#dirs.has(dir)) continue;
      const st = lstatOrUndefined(dir);
      if (!st) {
        fs.mkdirSync(dir, { mode: 0o755 });
      } else if (st.isSymbolicLink()) {
        throw this.#refuse(`entry ${JSON.stringify(shown)} would be written through the symlink ${JSON.stringify(path.relative(this.#root, dir))}`);
      } else if (!st.isDirectory()) {
        throw this.#refuse(`entry ${JSON.stringify(shown)} has a parent ${JSON.stringify(path.relative(this.#root, dir))} that is not a folder`);
      }
      this.#dirs.add(dir);
    }
    return dir;
  }

  #hardlinkSource(entry: ReadEntry): string {
    const shown = `hardlink ${JSON.stringify(entry.path)} → ${JSON.stringify(entry.linkpath ?? '')}`;
    if (!entry.linkpath) throw this.#refuse(`${shown} has no target`);
    const parts = entry.linkpath.split('/').filter((c) => c !== '' && c !== '.');
    if (parts.length === 0 || parts.includes('..')) throw this.#refuse(`${shown} points outside the layer`);
    let dir = this.#root;
    for (const part of parts.slice(0, -1)) {
      dir = path.join(dir, part);
      if (this.#dirs.has(dir)) continue;
      const st = lstatOrUndefined(dir);
      if (!st || !st.isDirectory()) throw this.#refuse(`${shown}: target is not in this layer${st?.isSymbolicLink() ? ' (it runs through a symlink)' : ''}`);
    }
    const source = path.join(dir, parts[parts.length - 1]!);
    const st = lstatOrUndefined(source);
    if (!st) throw this.#refuse(`${shown}: target is not in this layer`);
    if (st.isDirectory()) throw this.#refuse(`${shown}: target is a folder`);
    return source;
  }

  /**
   * Creates `target` with `make`; when something is already there (an earlier entry of this
   * layer), removes it and tries again. A folder over a folder is kept (`keepDir`).
   */
  #create<T>(target: string, make: () => T, keepDir = false): T | undefined {
    try {
      return make();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (keepDir && fs.lstatSync(target).isDirectory()) return undefined;
    this.#clear(target);
    return make();
  }

  /** Removes whatever is at `target` (never following a symlink), forgetting folders under it. */
  #clear(target: string): void {
    const st = lstatOrUndefined(target);
    if (!st) return;
    if (st.isDirectory()) {
      for (const d of this.#dirs) if (d === target || d.startsWith(`${target}${path.sep}`)) this.#dirs.delete(d);
    }
    fs.rmSync(target, { recursive: true, force: true });
  }

  #setDirMeta(target: string, entry: ReadEntry): void {
    if (isRoot) fs.chownSync(target, entry.uid ?? 0, entry.gid ?? 0);
    fs.chmodSync(target, (entry.mode ?? 0o755) & 0o7777);
    if (entry.mtime) this.#dirTimes.push([target, entry.mtime]);
  }
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  return fs.lstatSync(p, { throwIfNoEntry: false });
}

function writeAll(fd: number, chunk: Buffer): void {
  for (let off = 0; off < chunk.length; ) off += fs.writeSync(fd, chunk, off, chunk.length - off);
}

/** Magic bytes first; the media type only when the blob is too short to tell. */
async function sniffCompression(file: string, mediaType: string): Promise<'gzip' | 'zstd' | 'none'> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    if (bytesRead === 4 && head.readUInt32BE(0) === 0x28b52ffd) return 'zstd';
    return bytesRead < 4 ? layerCompression(mediaType) : 'none';
  } finally {
    await fh.close();
  }
}

function asHearthError(err: unknown, label: string): HearthError {
  if (err instanceof HearthError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code?.startsWith?.('TAR_') || e?.code === 'Z_DATA_ERROR' || e?.code === 'Z_BUF_ERROR') {
    return new HearthError('INVALID_ARGUMENT', `${label} is not a valid tar archive: ${e.message}`, { cause: err });
  }
  return new HearthError('INTERNAL', `cannot unpack ${label}: ${e?.message ?? String(err)}`, { cause: err });
}
