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
  for (const p of [m.upper, m.work]) checkPath(p);
  await mountLayers(m.layers, m.target, m.scratch, 'l', (rel) => `,upperdir=${rel(m.upper)},workdir=${rel(m.work)}`);
}

/**
 * A read-only overlay of `layers` (lowest first) at `target`: no upper dir, so nothing can
 * write to it. One layer is a read-only bind (overlay needs two lower dirs without an upper).
 */
export async function mountReadOnlyOverlay(m: { layers: string[]; target: string; scratch: string }): Promise<void> {
  if (m.layers.length === 0) throw new HearthError('INVALID_ARGUMENT', 'an overlay needs at least one layer');
  if (m.layers.length === 1) {
    try {
      await run('mount', ['--bind', '-o', 'ro', m.layers[0]!, m.target]);
    } catch (err) {
      throw new HearthError('UNAVAILABLE', `cannot bind ${m.layers[0]} at ${m.target}: ${stderrOf(err)}`, { cause: err });
    }
    return;
  }
  await mountLayers(m.layers, m.target, m.scratch, 'fl', () => '');
}

/** Mounts an overlay of `layers` plus `extra` options; long lowerdir lists go through links in `<scratch>/<linkDir>`. */
async function mountLayers(
  layers: string[],
  target: string,
  scratch: string,
  linkDir: string,
  extra: (rel: (p: string) => string) => string,
): Promise<void> {
  for (const p of [...layers, target]) checkPath(p);
  // overlay's lowerdir lists the top layer first
  const lowers = [...layers].reverse();
  let options = `lowerdir=${lowers.join(':')}${extra((p) => p)}`;
  let cwd: string | undefined;
  if (options.length > MAX_OPTIONS) {
    const links = path.join(scratch, linkDir);
    await fs.mkdir(links, { recursive: true });
    await Promise.all(lowers.map((dir, i) => fs.symlink(dir, path.join(links, String(i)))));
    options = `lowerdir=${lowers.map((_, i) => `${linkDir}/${i}`).join(':')}${extra((p) => path.relative(scratch, p))}`;
    cwd = scratch;
    if (options.length > MAX_OPTIONS) {
      throw new HearthError('INVALID_ARGUMENT', `too many layers for one overlay mount (${layers.length})`);
    }
  }
  try {
    await run('mount', ['-t', 'overlay', 'overlay', '-o', options, target], cwd ? { cwd } : {});
  } catch (err) {
    throw new HearthError('UNAVAILABLE', `cannot mount the overlay at ${target}: ${stderrOf(err)}`, { cause: err });
  }
}

/**
 * Makes folder `dir` a mount point of its own with shared propagation, so a mount made on it
 * later shows in the containers that bind it with `rslave`.
 */
export async function makeSharedMountPoint(dir: string): Promise<void> {
  try {
    await run('mount', ['--bind', '--make-shared', dir, dir]);
  } catch (err) {
    throw new HearthError('UNAVAILABLE', `cannot make ${dir} a shared mount point: ${stderrOf(err)}`, { cause: err });
  }
}

/** A tmpfs at `target` with mount(8) `options` (size=, nr_inodes=, mode=). */
export async function mountTmpfs(target: string, options: string): Promise<void> {
  try {
    await run('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', target]);
  } catch (err) {
    throw new HearthError('UNAVAILABLE', `cannot mount a tmpfs at ${target}: ${stderrOf(err)}`, { cause: err });
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
  // mounts stacked on one point (a bind with an overlay on top) need one umount each
  for (let round = 0; round < 8; round++) {
    const points = await mountsUnder(target);
    if (points.length === 0) return;
    await unmountOnce(points);
  }
}

async function unmountOnce(points: string[]): Promise<void> {
  for (const point of points) {
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
