import { Transform, type Readable } from 'node:stream';
import { HearthError, isHearthError } from '@hearth/core';
import type { ContentStore } from './content-store.ts';
import { assertDigest, isDigest } from './digest.ts';
import { isIndexMediaType, isManifestMediaType, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from './media-types.ts';
import { formatReference, parseReference, type ImageReference } from './reference.ts';
import type { ProgressEvent, RegistryClient } from './registry-client.ts';

/** An image whose manifest, config and layers are all in the content store. */
export interface PulledImage {
  /** The reference as asked for (registry/repository[:tag][@digest]). */
  reference: string;
  manifestDigest: string;
  config: ImageConfig;
  /** Lowest first; `diffId` is the digest of the uncompressed tar (from the config). */
  layers: { digest: string; diffId: string; mediaType: string; size: number }[];
}

export interface PullOptions {
  store: ContentStore;
  client: RegistryClient;
  ref: string | ImageReference;
  /** For an index: which image to take (default linux/amd64). */
  platform?: { os: string; architecture: string };
  /** Called as blob bytes arrive; blobs already in the store are not fetched and report nothing. */
  onProgress?: (e: ProgressEvent) => void;
  /**
   * The largest (compressed) blob accepted, default 2 GiB. A descriptor that says more is
   * refused before any byte is fetched; a download that runs past it is cut off. TOO_LARGE.
   */
  maxBlobBytes?: number;
}

const PARALLEL_BLOBS = 3;
/** Default for PullOptions.maxBlobBytes. */
export const DEFAULT_MAX_BLOB_BYTES = 2 * 1024 ** 3;
/** An image config is JSON read whole into memory: a few KiB in practice. */
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/**
 * Pulls an image into the content store: resolves the tag (an index to the wanted
 * platform), verifies every manifest and blob against its digest, and fetches only the
 * blobs the store lacks. Pulling by digest when the manifest is already stored talks to the
 * registry not at all.
 */
export async function pullImage(opts: PullOptions): Promise<PulledImage> {
  const { store, client, onProgress } = opts;
  const ref = typeof opts.ref === 'string' ? parseReference(opts.ref, client.registry) : opts.ref;
  const name = formatReference(ref);
  if (ref.registry !== client.registry) {
    throw new HearthError('INVALID_ARGUMENT', `cannot pull ${name} with a client for registry ${client.registry}`);
  }
  const platform = opts.platform ?? { os: 'linux', architecture: 'amd64' };
  const maxBlobBytes = opts.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;

  let top = await fetchManifest(store, client, ref.repository, ref.digest ?? ref.tag ?? 'latest');
  if (isIndexMediaType(top.mediaType) || (!top.mediaType && Array.isArray(top.manifest.manifests))) {
    top = await fetchManifest(store, client, ref.repository, selectPlatform(top.manifest as ImageIndex, platform, name));
  }
  if (!isManifestMediaType(top.mediaType) && !top.manifest.config) {
    throw new HearthError('BAD_GATEWAY', `${name} is a ${top.mediaType || 'document of unknown type'}, not an image manifest`);
  }
  const manifest = top.manifest as ImageManifest;
  if (!manifest.config?.digest || !Array.isArray(manifest.layers)) {
    throw new HearthError('BAD_GATEWAY', `manifest ${name} has no config or layers`);
  }
  // Checked before anything is fetched, so a hostile manifest costs no download.
  checkDescriptor(manifest.config, `the config of ${name}`, Math.min(maxBlobBytes, MAX_CONFIG_BYTES));
  manifest.layers.forEach((d, i) => checkDescriptor(d, `layer ${i} of ${name}`, maxBlobBytes));

  const fetchBlob = async (d: Descriptor, limit: number): Promise<void> => {
    const digest = d.digest;
    if (await store.has(digest)) return;
    const body = await client.getBlob(ref.repository, digest);
    const counted = onProgress ? body.pipe(progressCounter(digest, d.size, onProgress)) : body;
    if (onProgress) body.on('error', (err) => counted.destroy(err));
    try {
      await store.write(digest, counted as Readable, { size: d.size, maxBytes: limit });
    } catch (err) {
      body.destroy();
      if (isHearthError(err, 'INVALID_ARGUMENT')) {
        throw new HearthError('BAD_GATEWAY', `registry ${client.registry} served a wrong blob for ${digest} in ${name}: ${err.message}`, {
          cause: err,
          ...(err.details ? { details: err.details } : {}),
        });
      }
      if (isHearthError(err)) throw err;
      throw new HearthError('UNAVAILABLE', `download of blob ${digest} from ${client.registry} failed: ${(err as Error).message}`, { cause: err });
    }
  };

  await fetchBlob(manifest.config, Math.min(maxBlobBytes, MAX_CONFIG_BYTES));
  let config: ImageConfig;
  try {
    config = JSON.parse((await store.read(manifest.config.digest)).toString('utf8')) as ImageConfig;
  } catch {
    throw new HearthError('BAD_GATEWAY', `the config of ${name} is not JSON`);
  }
  if (typeof config !== 'object' || config === null) throw new HearthError('BAD_GATEWAY', `the config of ${name} is not a JSON object`);
  const diffIds: unknown = config.rootfs?.diff_ids ?? [];
  if (!Array.isArray(diffIds) || diffIds.some((d) => typeof d !== 'string' || !isDigest(d))) {
    throw new HearthError('BAD_GATEWAY', `the config of ${name} has rootfs.diff_ids that are not a list of sha256 digests`);
  }
  if (diffIds.length !== manifest.layers.length) {
    throw new HearthError('BAD_GATEWAY', `${name}: the config lists ${diffIds.length} layer diff_ids but the manifest has ${manifest.layers.length} layers`);
  }

  const queue = [...manifest.layers];
  const workers = Array.from({ length: Math.min(PARALLEL_BLOBS, queue.length) }, async () => {
    for (let d = queue.shift(); d; d = queue.shift()) await fetchBlob(d, maxBlobBytes);
  });
  await Promise.all(workers);

  return {
    reference: name,
    manifestDigest: top.digest,
    config,
    layers: manifest.layers.map((d, i) => ({ digest: d.digest, diffId: diffIds[i] as string, mediaType: d.mediaType, size: d.size })),
  };
}

/**
 * A descriptor from a registry's manifest is input like any other: its digest must be a
 * sha256 digest and its size a whole number of bytes within `limit`.
 */
function checkDescriptor(d: unknown, what: string, limit: number): asserts d is Descriptor {
  const desc = d as Partial<Descriptor> | null;
  if (typeof desc !== 'object' || desc === null) throw new HearthError('BAD_GATEWAY', `${what} has no descriptor`);
  if (typeof desc.digest !== 'string' || !isDigest(desc.digest)) {
    throw new HearthError('BAD_GATEWAY', `${what} has digest ${JSON.stringify(desc.digest)}, not sha256:<64 hex>`);
  }
  if (typeof desc.size !== 'number' || !Number.isSafeInteger(desc.size) || desc.size < 0) {
    throw new HearthError('BAD_GATEWAY', `${what} (${desc.digest}) has size ${JSON.stringify(desc.size)}, not a byte count`);
  }
  if (desc.size > limit) {
    throw new HearthError('TOO_LARGE', `${what} (${desc.digest}) is ${desc.size} bytes, more than the limit of ${limit} bytes`, {
      details: { digest: desc.digest, size: desc.size, limit },
    });
  }
}

/** A manifest by digest comes from the store when present; by tag it always asks the registry. */
async function fetchManifest(store: ContentStore, client: RegistryClient, repo: string, reference: string): Promise<{ digest: string; mediaType: string; manifest: any }> {
  if (reference.startsWith('sha256:') && (await store.has(reference))) {
    const manifest = JSON.parse((await store.read(reference)).toString('utf8'));
    return { digest: reference, mediaType: typeof manifest.mediaType === 'string' ? manifest.mediaType : '', manifest };
  }
  const got = await client.getManifest(repo, reference);
  await store.write(got.digest, got.bytes);
  return got;
}

/** The digest of the index entry for `want` (NOT_FOUND naming the image when there is none). */
export function selectPlatform(index: ImageIndex, want: { os: string; architecture: string }, name: string): string {
  const chosen = (Array.isArray(index.manifests) ? index.manifests : []).find((d) => matches(d?.platform, want));
  if (!chosen) throw new HearthError('NOT_FOUND', `image ${name} has no ${want.os}/${want.architecture} variant`);
  return assertDigest(chosen.digest);
}

function matches(p: Platform | undefined, want: { os: string; architecture: string }): boolean {
  return !!p && p.os === want.os && p.architecture === want.architecture;
}

/** Passes bytes through and reports progress about every 256 KiB and at the end. */
function progressCounter(digest: string, total: number, onProgress: (e: ProgressEvent) => void): Transform {
  let done = 0;
  let reported = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      if (done - reported >= 256 * 1024 || done === total) {
        reported = done;
        onProgress({ digest, done, total });
      }
      cb(null, chunk);
    },
  });
}
