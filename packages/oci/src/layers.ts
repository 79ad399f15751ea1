import { chmod, mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ContentStore } from './content-store.ts';
import { digestHex } from './digest.ts';
import type { PulledImage } from './pull.ts';
import { unpackLayer, type UnpackLimits } from './unpack.ts';

/** Unpacks still running in this process, by final folder, so concurrent callers share one. */
const inFlight = new Map<string, Promise<void>>();

/**
 * Makes sure every layer of a pulled image is unpacked under
 * `<home>/layers/sha256/<diffid hex>/` and returns those folders, lowest first (reverse for
 * overlayfs lowerdir). A layer is unpacked once: into a scratch folder under
 * `<home>/layers/tmp/`, then renamed into place, so a folder that exists is complete. Two
 * processes racing on one layer both unpack; the first rename wins and the other's copy is
 * thrown away. A layer that fails (a refused entry, a tar bomb past `limits`) leaves nothing
 * behind under `<home>/layers/`.
 */
export async function ensureLayersUnpacked(opts: { home: string; store: ContentStore; image: PulledImage; limits?: Partial<UnpackLimits> }): Promise<string[]> {
  const base = path.join(opts.home, 'layers', 'sha256');
  const tmpBase = path.join(opts.home, 'layers', 'tmp');
  const dirs: string[] = [];
  for (const layer of opts.image.layers) {
    const final = path.join(base, digestHex(layer.diffId));
    dirs.push(final);
    if (await exists(final)) continue;
    let job = inFlight.get(final);
    if (!job) {
      job = unpackOnce(opts.store, layer, final, base, tmpBase, opts.limits).finally(() => inFlight.delete(final));
      inFlight.set(final, job);
    }
    await job;
  }
  return dirs;
}

async function unpackOnce(
  store: ContentStore,
  layer: PulledImage['layers'][number],
  final: string,
  base: string,
  tmpBase: string,
  limits: Partial<UnpackLimits> | undefined,
): Promise<void> {
  await mkdir(base, { recursive: true });
  await mkdir(tmpBase, { recursive: true });
  const scratch = await mkdtemp(path.join(tmpBase, `${digestHex(layer.diffId).slice(0, 16)}-`));
  try {
    // mkdtemp makes 0700; a layer's root is the container's "/" unless the layer says otherwise.
    await chmod(scratch, 0o755);
    await unpackLayer({ store, digest: layer.digest, mediaType: layer.mediaType, dest: scratch, diffId: layer.diffId, ...(limits ? { limits } : {}) });
    try {
      await rename(scratch, final);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Someone else finished first: their copy is as good as ours.
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await exists(final))) return;
      throw err;
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}
