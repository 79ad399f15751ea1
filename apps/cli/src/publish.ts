import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { HearthError, isHearthError, unavailable, type HearthConfig } from '@hearth/core';
import type { RegistryClient } from '@hearth/oci';
import { networkReason } from './errors.ts';
import type { Project } from './project.ts';
import { createProgress } from './progress.ts';

/** The image a function runs from, as the gateway wants it: `ref@sha256:…`. */
export interface PublishedImage {
  /** `127.0.0.1:5000/fn/hello:3f2a9c1b0d4e@sha256:<64 hex>` */
  reference: string;
  digest: string;
  /** `true` when nothing was built: `runtime: image` brings its own image. */
  prebuilt: boolean;
}

export interface PublishOptions {
  /** Base image ref; default `<registry>/hearth/<runtime>:latest`. */
  base?: string;
  /** Tag of the function image; default a content hash of the folder, base and env. */
  tag?: string;
  /** Where status lines go (stdout stays free for the image reference). */
  log?: NodeJS.WriteStream;
  /** 'Building' or 'Pushing', for the status line. */
  verb?: string;
}

/** Folders whose contents never belong in a function image's identity. */
const SKIP_IN_HASH = new Set(['.git', '.hearth']);

/**
 * Builds the function image from its folder and pushes it: the base image's layers
 * (mounted across repositories, not uploaded again) plus one layer with the folder under
 * `/function`, and `HEARTH_HANDLER` and the spec's env in the image config.
 * A registry is where the image is assembled, so building and pushing are one step.
 */
export async function publishFunction(project: Project, config: HearthConfig, opts: PublishOptions = {}): Promise<PublishedImage> {
  // Loaded here, not at the top: `ls`, `invoke` and `init` should not pay for tar and undici.
  const oci = await import('@hearth/oci');
  const log = opts.log ?? process.stderr;
  const { spec } = project;

  if (spec.runtime === 'image') return resolvePrebuilt(oci, spec.image as string, config);

  const client = registryClient(oci, config.registry, config);
  await pingRegistry(client, config.registry);

  const base = opts.base ?? `${config.registry}/hearth/${spec.runtime}:latest`;
  const baseRef = oci.parseReference(base, config.registry);
  try {
    await client.getManifest(baseRef.repository, baseRef.digest ?? baseRef.tag ?? 'latest');
  } catch (err) {
    if (isHearthError(err, 'NOT_FOUND')) {
      throw new HearthError('NOT_FOUND', `base image ${base} is not in the registry; push Hearth's base images first (or pass --base REF)`, { cause: err });
    }
    throw err;
  }

  const env: Record<string, string> = { ...spec.env, HEARTH_HANDLER: `/function/${spec.handler as string}` };
  const labels = { 'org.opencontainers.image.title': spec.name, 'dev.hearth.runtime': spec.runtime };
  const tag = opts.tag ?? (await contentTag(project.dir, { base, env, labels }));
  const target = `${config.registry}/fn/${spec.name}:${tag}`;

  log.write(`${opts.verb ?? 'Building'} ${spec.name} from ${project.displayDir} on ${base} → ${target}\n`);
  const progress = createProgress(log);
  try {
    const result = await oci.buildFunctionImage({
      client,
      base,
      target,
      files: { dir: project.dir, prefix: 'function' },
      config: { env, labels },
      onProgress: (e) => progress.onProgress(e),
    });
    return { reference: result.reference, digest: result.digest, prebuilt: false };
  } catch (err) {
    if (isHearthError(err)) throw err;
    throw unavailable(`registry ${config.registry}: push of ${target} failed (${networkReason(err)})`, err);
  } finally {
    progress.stop();
  }
}

type Oci = typeof import('@hearth/oci');

function registryClient(oci: Oci, registry: string, config: HearthConfig): RegistryClient {
  const own = registry === config.registry;
  return new oci.RegistryClient({
    registry,
    // Same rule as loadConfig: plain HTTP for loopback registries.
    insecure: own ? config.registryInsecure : /^(localhost|127\.|\[::1\])/.test(registry),
    ...(own && config.registryUsername ? { username: config.registryUsername } : {}),
    ...(own && config.registryPassword ? { password: config.registryPassword } : {}),
    userAgent: 'hearth-cli/0.1.0',
  });
}

async function pingRegistry(client: RegistryClient, registry: string): Promise<void> {
  try {
    await client.ping();
  } catch (err) {
    if (isHearthError(err) && err.code !== 'UNAVAILABLE' && err.code !== 'INTERNAL') throw err;
    throw unavailable(`registry ${registry} is unreachable (${networkReason(err)}); is it running? (set HEARTH_REGISTRY or --registry to use another)`, err);
  }
}

/** `runtime: image`: nothing to build; pin the tag the spec names to its current digest. */
async function resolvePrebuilt(oci: Oci, image: string, config: HearthConfig): Promise<PublishedImage> {
  const ref = oci.parseReference(image, config.registry);
  const client = registryClient(oci, ref.registry, config);
  if (ref.digest) return { reference: image, digest: ref.digest, prebuilt: true };
  await pingRegistry(client, ref.registry);
  const { digest } = await client.getManifest(ref.repository, ref.tag ?? 'latest');
  return { reference: `${oci.formatReference({ ...ref })}@${digest}`, digest, prebuilt: true };
}

/**
 * A tag that changes when what goes into the image changes: the folder's files (path,
 * executable bit, bytes), the base ref and the image config. The same folder pushed twice
 * gets the same tag, so re-deploying unchanged code adds no new tags to the registry.
 */
export async function contentTag(dir: string, extra: unknown): Promise<string> {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(extra));
  const walk = async (rel: string): Promise<void> => {
    const entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (rel === '' && SKIP_IN_HASH.has(entry.name)) continue;
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
      const abs = path.join(dir, relPath);
      if (entry.isDirectory()) {
        hash.update(`d ${relPath}\0`);
        await walk(relPath);
      } else if (entry.isSymbolicLink()) {
        hash.update(`l ${relPath}\0${await fs.readlink(abs)}\0`);
      } else if (entry.isFile()) {
        const { mode } = await fs.stat(abs);
        hash.update(`f ${relPath}\0${mode & 0o111 ? 'x' : '-'}\0`);
        hash.update(await fs.readFile(abs));
        hash.update('\0');
      }
    }
  };
  await walk('');
  return hash.digest('hex').slice(0, 12);
}
