/**
 * Stem cells: generic instances of a base image started before any call, then specialized
 * into one function (as OpenWhisk's prewarmed containers and Fission's pool manager do).
 * A function can use a stem cell of base B when its image is B's layers plus layers of its
 * own that only add files under /function.
 */
import fs from 'node:fs';
import path from 'node:path';
import { HearthError } from '@hearth/core';

/** The bootstrap's specialization endpoint (only answered before specialization). */
export const SPECIALIZE_PATH = '/_hearth/specialize';

/**
 * The function's own layers (by diff id, lowest first) when its image is the base image plus
 * more layers, else undefined. An image equal to the base has no layers of its own: [].
 */
export function stemCellLayers(baseDiffIds: readonly string[], functionDiffIds: readonly string[]): string[] | undefined {
  if (functionDiffIds.length < baseDiffIds.length) return undefined;
  for (let i = 0; i < baseDiffIds.length; i++) if (functionDiffIds[i] !== baseDiffIds[i]) return undefined;
  return functionDiffIds.slice(baseDiffIds.length);
}

/**
 * The `function/` folders of unpacked layer dirs (lowest first), skipping layers without one.
 * Throws INVALID_ARGUMENT when a function layer holds anything outside /function: a stem
 * cell shows only /function, so such a function needs a cold start. Synchronous, like the
 * helpers below: they touch a few small folders during a call's start, where each trip
 * through libuv's thread pool (and back through a busy event loop) costs more than the
 * system call it makes.
 */
export function functionFolders(layers: readonly string[], opts: { onlyFunction: boolean }): string[] {
  const out: string[] = [];
  for (const layer of layers) {
    let entries: string[];
    try {
      entries = fs.readdirSync(layer);
    } catch (err) {
      throw new HearthError('INVALID_ARGUMENT', `layer folder ${layer} is not readable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const outside = entries.filter((e) => e !== 'function');
    if (opts.onlyFunction && outside.length > 0) {
      throw new HearthError(
        'INVALID_ARGUMENT',
        `layer ${layer} has files outside /function (${outside.slice(0, 3).join(', ')}): a stem cell cannot run this function`,
      );
    }
    if (entries.includes('function') && fs.statSync(path.join(layer, 'function')).isDirectory()) out.push(path.join(layer, 'function'));
  }
  return out;
}

/**
 * Function code up to this size is copied into a stem cell instead of mounted: a mount is an
 * exec of mount(8), 15-40 ms from a large process on this machine, where copying a few small
 * files takes well under one. Small, too, because the copy runs on the event loop.
 */
export const COPY_LIMITS = { entries: 64, bytes: 1 << 20 };

interface CodeEntry {
  /** Path inside the folder ('' for the folder itself). */
  rel: string;
  kind: 'dir' | 'file' | 'symlink';
  mode: number;
  uid: number;
  gid: number;
}

export type FunctionCodePlan = { kind: 'copy'; from: string; entries: CodeEntry[] } | { kind: 'mount'; folders: string[] };

/**
 * How a stem cell shows the function's code at /function: the view must be the overlay of the
 * base image's `function/` folders under the function's own (lowest first).
 * `copy`: the function has one folder of its own that replaces every entry of the base's
 * (which holds files only, as the node base's package.json) and is small (COPY_LIMITS): the
 * view is that folder alone, and its files are copied into the cell's /function, which the
 * container sees through a read-only bind. `mount`: anything else; the folders are mounted.
 * Throws INVALID_ARGUMENT when there is no folder at all.
 */
export function planFunctionCode(baseFolders: readonly string[], ownFolders: readonly string[]): FunctionCodePlan {
  const folders = [...baseFolders, ...ownFolders];
  if (folders.length === 0) throw new HearthError('INVALID_ARGUMENT', 'no layer of the image has a /function folder to show at /function');
  const mount = { kind: 'mount' as const, folders };
  if (ownFolders.length !== 1) return mount;
  const own = ownFolders[0]!;
  const ownNames = new Set(fs.readdirSync(own));
  for (const folder of baseFolders) {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
      // a folder in both would be merged (unless the function's is opaque, which only a mount knows)
      if (entry.isDirectory() || !ownNames.has(entry.name)) return mount;
    }
  }
  const entries = listSmallTree(own);
  return entries ? { kind: 'copy', from: own, entries } : mount;
}

/**
 * Every folder, file and symlink under `root` (parents first), or undefined when the tree
 * passes COPY_LIMITS or holds anything else (FIFOs, devices). Overlay whiteouts (0:0 character
 * devices) are left out: with no lower folder under this one they hide nothing.
 */
function listSmallTree(root: string): CodeEntry[] | undefined {
  const out: CodeEntry[] = [];
  let bytes = 0;
  const queue = [''];
  while (queue.length > 0) {
    const rel = queue.shift()!;
    const st = fs.lstatSync(path.join(root, rel));
    if (st.isCharacterDevice() && st.rdev === 0 && rel !== '') continue;
    const kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : undefined;
    if (!kind) return undefined;
    out.push({ rel, kind, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
    if (kind === 'file') bytes += st.size;
    if (out.length > COPY_LIMITS.entries || bytes > COPY_LIMITS.bytes) return undefined;
    if (kind === 'dir') for (const name of fs.readdirSync(path.join(root, rel))) queue.push(path.join(rel, name));
  }
  return out;
}

/**
 * Copies a `copy` plan's tree into `target` (an empty folder), keeping modes and owners:
 * what the function reads is what the overlay would show.
 */
export function copyFunctionCode(plan: { from: string; entries: readonly CodeEntry[] }, target: string): void {
  const at = (e: CodeEntry) => path.join(target, e.rel);
  // parents come first; the target itself exists
  for (const e of plan.entries) {
    const from = path.join(plan.from, e.rel);
    if (e.kind === 'dir') {
      if (e.rel !== '') fs.mkdirSync(at(e));
      continue;
    }
    if (e.kind === 'file') fs.copyFileSync(from, at(e), fs.constants.COPYFILE_FICLONE);
    else fs.symlinkSync(fs.readlinkSync(from), at(e));
    // the copy is root's: only another owner needs a chown
    if (e.uid !== 0 || e.gid !== 0) fs.lchownSync(at(e), e.uid, e.gid);
    // copyFileSync keeps the mode, but a chown clears the set-id bits
    if (e.kind === 'file' && e.mode & 0o6000) fs.chmodSync(at(e), e.mode);
  }
  // folders last, deepest first, once their entries are in
  for (const e of plan.entries.filter((x) => x.kind === 'dir').reverse()) {
    const st = fs.statSync(at(e));
    if (st.uid !== e.uid || st.gid !== e.gid) fs.chownSync(at(e), e.uid, e.gid);
    if ((st.mode & 0o7777) !== e.mode) fs.chmodSync(at(e), e.mode);
  }
}
