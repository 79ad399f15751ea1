import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Header, Pack, ReadEntry } from 'tar';
import { MEDIA_TYPES, RegistryClient, sha256Digest } from '@hearth/oci';

/** One tar entry as a hostile layer might carry it (any path, any link target, devices). */
export interface EntrySpec {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'BlockDevice' | 'FIFO';
  body?: string | Buffer;
  linkpath?: string;
  mode?: number;
  devmaj?: number;
  devmin?: number;
}

/**
 * A gzip layer made entry by entry with node-tar, so a test can build what no folder on
 * disk would give: `../` paths, links to /etc, writes through symlinks, device nodes.
 */
export async function makeLayer(entries: EntrySpec[]): Promise<Buffer> {
  const pack = new Pack({ preservePaths: true });
  const chunks: Buffer[] = [];
  pack.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve, reject) => {
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const e of entries) {
    const body = e.body === undefined ? undefined : Buffer.from(e.body);
    const type = e.type ?? (e.path.endsWith('/') ? 'Directory' : 'File');
    const header = new Header({
      path: e.path,
      type,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      uid: 0,
      gid: 0,
      size: body?.length ?? 0,
      mtime: new Date(0),
      ...(e.linkpath ? { linkpath: e.linkpath } : {}),
      ...(e.devmaj !== undefined ? { devmaj: e.devmaj, devmin: e.devmin ?? 0 } : {}),
    });
    const entry = new ReadEntry(header);
    if (body?.length) entry.write(body);
    entry.end();
    pack.add(entry);
  }
  pack.end();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

/** An OCI image (config + manifest) around gzip layers, as bytes ready to serve or push. */
export function imageOf(layers: Buffer[]): { config: Buffer; manifest: Buffer; manifestDigest: string } {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256Digest(gunzipSync(l))) },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: sha256Digest(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: MEDIA_TYPES.ociLayerGzip, digest: sha256Digest(l), size: l.length })),
    }),
  );
  return { config, manifest, manifestDigest: sha256Digest(manifest) };
}

/**
 * Pushes crafted images to the real registry under one test namespace and removes them
 * again in `cleanup()` (manifests by digest, then the blobs).
 */
export class CraftedImages {
  readonly namespace = `test-security-${randomBytes(4).toString('hex')}`;
  readonly #manifests: { repo: string; digest: string }[] = [];
  readonly #blobs: { repo: string; digest: string }[] = [];

  constructor(readonly client: RegistryClient) {}

  /** Pushes an image of `layers` as `<namespace>/<name>:v1`; returns the reference by digest. */
  async push(name: string, layers: Buffer[]): Promise<string> {
    const repo = `${this.namespace}/${name}`;
    const image = imageOf(layers);
    for (const blob of [image.config, ...layers]) {
      const digest = sha256Digest(blob);
      await this.client.uploadBlob(repo, digest, blob);
      this.#blobs.push({ repo, digest });
    }
    const digest = await this.client.putManifest(repo, 'v1', image.manifest, MEDIA_TYPES.ociManifest);
    this.#manifests.push({ repo, digest });
    return `${this.client.registry}/${repo}@${digest}`;
  }

  async cleanup(): Promise<void> {
    for (const m of this.#manifests) await this.client.deleteManifest(m.repo, m.digest).catch(() => {});
    for (const b of this.#blobs) await this.client.deleteBlob(b.repo, b.digest).catch(() => {});
  }
}

/** Every path under `dir` (relative, folders end in "/"), sorted; [] when dir does not exist. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (sub: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(path.join(dir, sub), { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const rel = path.join(sub, e.name);
      if (e.isDirectory()) {
        out.push(`${rel}/`);
        await walk(rel);
      } else {
        out.push(rel);
      }
    }
  };
  await walk('');
  return out.sort();
}
