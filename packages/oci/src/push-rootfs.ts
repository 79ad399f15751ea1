import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { HearthError } from '@hearth/core';
import type { ImageConfig } from './media-types.ts';
import { packLayer } from './pack-layer.ts';
import { pushImage } from './push-image.ts';
import { parseReference } from './reference.ts';
import type { ProgressEvent, RegistryClient } from './registry-client.ts';

export interface PushRootfsImageOptions {
  client: RegistryClient;
  /** Target reference with a tag, in the client's registry. */
  target: string;
  /** A complete root filesystem, e.g. assembled with `dpkg-deb -x`. */
  rootfsDir: string;
  config: { env?: string[]; cmd?: string[]; entrypoint?: string[]; workingDir?: string; labels?: Record<string, string> };
  onProgress?: (e: ProgressEvent) => void;
}

const EPOCH_ISO = new Date(0).toISOString();

/**
 * Pushes a folder as a one-layer linux/amd64 image, the way Hearth's base images are made
 * from Debian packages: one gzip layer (entries sorted, mtime 0, numeric owners, modes,
 * symlinks and hardlinks kept; sockets, FIFOs and device files skipped), an OCI config with
 * rootfs.diff_ids, an OCI manifest under the target's tag. The same folder gives the same digest.
 */
export async function pushRootfsImage(opts: PushRootfsImageOptions): Promise<{ reference: string; digest: string }> {
  const target = parseReference(opts.target, opts.client.registry);
  const st = await stat(opts.rootfsDir).catch(() => undefined);
  if (!st?.isDirectory()) throw new HearthError('INVALID_ARGUMENT', `rootfs ${opts.rootfsDir} is not a folder`);
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'hearth-rootfs-'));
  try {
    const layer = await packLayer({ dir: opts.rootfsDir, out: path.join(scratch, 'layer.tar.gz') });
    const c = opts.config;
    const config: ImageConfig = {
      created: EPOCH_ISO,
      architecture: 'amd64',
      os: 'linux',
      config: {
        ...(c.env ? { Env: c.env } : {}),
        ...(c.entrypoint ? { Entrypoint: c.entrypoint } : {}),
        ...(c.cmd ? { Cmd: c.cmd } : {}),
        ...(c.workingDir ? { WorkingDir: c.workingDir } : {}),
        ...(c.labels ? { Labels: c.labels } : {}),
      },
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      history: [{ created: EPOCH_ISO, created_by: 'hearth pushRootfsImage' }],
    };
    return await pushImage({
      client: opts.client,
      target,
      layers: [{ descriptor: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size }, file: layer.file }],
      config,
      onProgress: opts.onProgress,
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
