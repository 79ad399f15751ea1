import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { HearthError } from '@hearth/core';
import { sha256Digest } from './digest.ts';
import { isIndexMediaType, toOciLayerMediaType, type ImageConfig, type ImageIndex, type ImageManifest } from './media-types.ts';
import { packLayer } from './pack-layer.ts';
import { selectPlatform } from './pull.ts';
import { pushImage, type LayerSource } from './push-image.ts';
import { formatReference, parseReference } from './reference.ts';
import type { ProgressEvent, RegistryClient } from './registry-client.ts';

export interface BuildFunctionImageOptions {
  client: RegistryClient;
  /** Base image reference, in the client's registry (e.g. "127.0.0.1:5000/hearth/node:latest"). */
  base: string;
  /** Target reference with a tag, in the client's registry. */
  target: string;
  /** The function's folder; its files go under `/<prefix>/` (e.g. "function"). */
  files: { dir: string; prefix: string };
  config: { env?: Record<string, string>; cmd?: string[]; entrypoint?: string[]; labels?: Record<string, string>; workingDir?: string };
  /** Upload progress per blob; mounted or already present blobs report done at once. */
  onProgress?: (e: ProgressEvent) => void;
}

const EPOCH_ISO = new Date(0).toISOString();

/**
 * Builds a function image without Docker: the base image's layers (cross-repository mounted
 * into the target repository, never re-uploaded) plus one reproducible code layer (sorted,
 * mtime 0, uid/gid 0, gzip), with the config changes applied (env merged, labels merged,
 * entrypoint/cmd/workingDir replaced; a new entrypoint without cmd clears cmd, as in a
 * Dockerfile). The same inputs give the same digest. Returns `target@sha256:…`.
 */
export async function buildFunctionImage(opts: BuildFunctionImageOptions): Promise<{ reference: string; digest: string }> {
  const { client } = opts;
  const base = parseReference(opts.base, client.registry);
  const target = parseReference(opts.target, client.registry);
  if (base.registry !== client.registry) {
    throw new HearthError('INVALID_ARGUMENT', `base image ${opts.base} must be in registry ${client.registry}, like the target`);
  }
  const baseName = formatReference(base);

  let top = await client.getManifest(base.repository, base.digest ?? base.tag ?? 'latest');
  if (isIndexMediaType(top.mediaType) || Array.isArray(top.manifest?.manifests)) {
    top = await client.getManifest(base.repository, selectPlatform(top.manifest as ImageIndex, { os: 'linux', architecture: 'amd64' }, baseName));
  }
  const manifest = top.manifest as ImageManifest;
  if (!manifest?.config?.digest || !Array.isArray(manifest.layers)) {
    throw new HearthError('BAD_GATEWAY', `base image ${baseName} has no config or layers`);
  }
  const baseConfig = await readConfig(client, base.repository, manifest.config.digest, baseName);

  const scratch = await mkdtemp(path.join(os.tmpdir(), 'hearth-build-'));
  try {
    const layer = await packLayer({ dir: opts.files.dir, prefix: opts.files.prefix, owner: { uid: 0, gid: 0 }, out: path.join(scratch, 'layer.tar.gz') });
    const config = applyConfig(baseConfig, opts.config, layer.diffId);
    const layers: LayerSource[] = [
      ...manifest.layers.map((d) => ({ descriptor: { mediaType: toOciLayerMediaType(d.mediaType), digest: d.digest, size: d.size }, fromRepo: base.repository })),
      { descriptor: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size }, file: layer.file },
    ];
    return await pushImage({ client, target, layers, config, onProgress: opts.onProgress });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function readConfig(client: RegistryClient, repo: string, digest: string, name: string): Promise<ImageConfig> {
  const chunks: Buffer[] = [];
  for await (const c of await client.getBlob(repo, digest)) chunks.push(c as Buffer);
  const bytes = Buffer.concat(chunks);
  if (sha256Digest(bytes) !== digest) {
    throw new HearthError('BAD_GATEWAY', `registry ${client.registry} served a wrong config blob for ${name}: expected ${digest}, got ${sha256Digest(bytes)}`);
  }
  try {
    return JSON.parse(bytes.toString('utf8')) as ImageConfig;
  } catch {
    throw new HearthError('BAD_GATEWAY', `the config of ${name} is not JSON`);
  }
}

function applyConfig(base: ImageConfig, change: BuildFunctionImageOptions['config'], diffId: string): ImageConfig {
  const config = structuredClone(base);
  const run = { ...(config.config ?? {}) };
  if (change.env) {
    const env = [...(run.Env ?? [])];
    for (const [key, value] of Object.entries(change.env)) {
      const i = env.findIndex((e) => e.split('=')[0] === key);
      if (i >= 0) env[i] = `${key}=${value}`;
      else env.push(`${key}=${value}`);
    }
    run.Env = env;
  }
  if (change.entrypoint) {
    run.Entrypoint = change.entrypoint;
    if (change.cmd) run.Cmd = change.cmd;
    else delete run.Cmd;
  } else if (change.cmd) {
    run.Cmd = change.cmd;
  }
  if (change.workingDir) run.WorkingDir = change.workingDir;
  if (change.labels) run.Labels = { ...(run.Labels ?? {}), ...change.labels };
  config.config = run;
  config.created = EPOCH_ISO;
  config.rootfs = { type: 'layers', diff_ids: [...(config.rootfs?.diff_ids ?? []), diffId] };
  if (config.history) config.history = [...config.history, { created: EPOCH_ISO, created_by: 'hearth build', comment: 'function code' }];
  return config;
}
