import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HearthError } from '@hearth/core';
import { Digester, sha256Digest } from './digest.ts';
import { MEDIA_TYPES, type Descriptor, type ImageConfig, type ImageManifest } from './media-types.ts';
import { formatReference, type ImageReference } from './reference.ts';
import type { ProgressEvent, RegistryClient } from './registry-client.ts';

/** A layer to put into the target repository: from a local file, or already in the registry. */
export type LayerSource =
  | { descriptor: Descriptor; file: string }
  | { descriptor: Descriptor; fromRepo: string };

/**
 * Pushes an image: layers (uploaded, or cross-repository mounted from where they already
 * are), then the config, then an OCI manifest under the target's tag. Returns the pinned
 * reference `registry/repo:tag@sha256:…` and the manifest digest.
 */
export async function pushImage(opts: {
  client: RegistryClient;
  target: ImageReference;
  layers: LayerSource[];
  config: ImageConfig;
  onProgress?: ((e: ProgressEvent) => void) | undefined;
}): Promise<{ reference: string; digest: string }> {
  const { client, target, onProgress } = opts;
  if (target.registry !== client.registry) {
    throw new HearthError('INVALID_ARGUMENT', `cannot push ${formatReference(target)} with a client for registry ${client.registry}`);
  }
  if (target.digest) throw new HearthError('INVALID_ARGUMENT', `push target ${formatReference(target)} must have a tag, not a digest`);
  const repo = target.repository;
  const progress = onProgress ? { onProgress } : {};

  for (const layer of opts.layers) {
    const { digest } = layer.descriptor;
    if ('file' in layer) {
      await client.uploadBlob(repo, digest, layer.file, progress);
    } else if (layer.fromRepo === repo || (await client.hasBlob(repo, digest)) !== undefined) {
      onProgress?.({ digest, done: layer.descriptor.size, total: layer.descriptor.size });
    } else if (await client.mountBlob(repo, digest, layer.fromRepo)) {
      onProgress?.({ digest, done: layer.descriptor.size, total: layer.descriptor.size });
    } else {
      await copyBlob(client, layer.fromRepo, repo, layer.descriptor, onProgress);
    }
  }

  const configBytes = Buffer.from(JSON.stringify(opts.config));
  const configDigest = sha256Digest(configBytes);
  await client.uploadBlob(repo, configDigest, configBytes, progress);

  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: configDigest, size: configBytes.length },
    layers: opts.layers.map((l) => l.descriptor),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = await client.putManifest(repo, target.tag ?? 'latest', bytes, MEDIA_TYPES.ociManifest);
  return { reference: formatReference({ ...target, tag: target.tag ?? 'latest', digest }), digest };
}

/** When the registry will not mount: download to a scratch file (verified), then upload. */
async function copyBlob(client: RegistryClient, fromRepo: string, repo: string, d: Descriptor, onProgress?: (e: ProgressEvent) => void): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hearth-copy-'));
  try {
    const file = path.join(dir, 'blob');
    const digester = new Digester();
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        digester.update(chunk);
        cb(null, chunk);
      },
    });
    await pipeline(await client.getBlob(fromRepo, d.digest), tap, createWriteStream(file));
    if (digester.digest() !== d.digest) {
      throw new HearthError('BAD_GATEWAY', `registry ${client.registry} served a wrong blob for ${d.digest} in ${fromRepo}: got ${digester.digest()}`);
    }
    await client.uploadBlob(repo, d.digest, file, onProgress ? { onProgress } : {});
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
