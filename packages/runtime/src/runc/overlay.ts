/**
 * The container rootfs: an overlay mount of read-only layer dirs plus a private upper dir.
 * mount(8)/umount(8) do the syscalls (Node has no binding for mount(2)).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import path from 'node:path';
import { HearthError } from '@hearth/core';

const run = promisify(execFile);

/**
 * The kernel reads mount options from one page (4096 bytes). Past this, the layers are
 * reached through short symlinks (`<dir>/l/<n>`) named relative to the mount's cwd.
 */
const MAX_OPTIONS = 3800;

export interface OverlayMount {
  /** Layer dirs, lowest first (the order images list them). */
  layers: string[];
  upper: string;
  work: string;
  target: string;
  /** Folder for the short layer symlinks when the options are long (the instance folder). */
  scratch: string;
}

function checkPath(p: string): void {
  // ',' separates mount options and ':' separates lower dirs; neither can be escaped.
  if (/[,:\n]/.test(p)) throw new HearthError('INVALID_ARGUMENT', `path not usable in an overlay mount (has ',' or ':'): ${p}`);
}

export async function mountOverlay(m: OverlayMount): Promise<void> {
  if (m.layers.length === 0) throw new HearthError('INVALID_ARGUMENT', 'an overlay needs at least one layer');
  for (const p of [...m.layers, m.upper, m.work, m.target]) checkPath(p);
  // overlay's lowerdir lists the top layer first
  const lowers = [...m.layers].reverse();
  let options = `lowerdir=${lowers.join(':')},upperdir=${m.upper},workdir=${m.work}`;
  let cwd: string | undefined;
  if (options.length > MAX_OPTIONS) {
    const links = path.join(m.scratch, 'l');
    await fs.mkdir(links, { recursive: true });
    await Promise.all(lowers.map((dir, i) => fs.symlink(dir, path.join(links, String(i)))));
    options =
      `lowerdir=${lowers.map((_, i) => `l/${i}`).join(':')},` +
      `upperdir=${path.relative(m.scratch, m.upper)},workdir=${path.relative(m.scratch, m.work)}`;
    cwd = m.scratch;
    if (options.length > MAX_OPTIONS) {
      throw new HearthError('INVALID_ARGUMENT', `too many layers for one overlay mount (${m.layers.length})`);
    }
  }
  try {
    await run('mount', ['-t', 'overlay', 'overlay', '-o', options, m.target], cwd ? { cwd } : {});
  } catch (err) {
    throw new HearthError('UNAVAILABLE', `cannot mount the rootfs overlay at ${m.target}: ${stderrOf(err)}`, { cause: err });
  }
}

/** Mount points under (or at) `prefix`, from /proc/self/mountinfo, deepest first. */
export async function mountsUnder(prefix: string): Promise<string[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const points = text
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    // mountinfo escapes space, tab, newline and backslash as octal
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === prefix || p.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/** Unmounts `target` if mounted; lazily when busy. Idempotent. */
export async function unmount(target: string): Promise<void> {
  for (const point of await mountsUnder(target)) {
    try {
      await run('umount', [point]);
    } catch {
      try {
        await run('umount', ['-l', point]);
      } catch (err) {
        if ((await mountsUnder(point)).includes(point)) {
          throw new HearthError('UNAVAILABLE', `cannot unmount ${point}: ${stderrOf(err)}`, { cause: err });
        }
      }
    }
  }
}

function stderrOf(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr || e.message || String(err)).trim();
}
