import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header, Pack, ReadEntry } from 'tar';
import { RegistryClient, sha256Digest } from '@hearth/oci';

/** The dev registry every test talks to (plain HTTP on loopback). */
export const REGISTRY = '127.0.0.1:5000';

export const newClient = () => new RegistryClient({ registry: REGISTRY, insecure: true });

/** A repository namespace of its own per test file: `test-oci-<random>`. */
export const testNamespace = () => `test-oci-${randomBytes(4).toString('hex')}`;

export async function tempDir(label: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `hearth-test-oci-${label}-`));
}

/**
 * Remembers what a test pushed so that one `cleanup()` in `after` removes it: manifests by
 * digest, and blobs pushed without a manifest.
 */
export class Pushed {
  readonly manifests: { repo: string; digest: string }[] = [];
  readonly blobs: { repo: string; digest: string }[] = [];
  readonly dirs: string[] = [];

  constructor(readonly client: RegistryClient) {}

  async cleanup(): Promise<void> {
    for (const m of this.manifests) await this.client.deleteManifest(m.repo, m.digest).catch(() => {});
    for (const b of this.blobs) await this.client.deleteBlob(b.repo, b.digest).catch(() => {});
    for (const d of this.dirs) await rm(d, { recursive: true, force: true });
  }
}

export interface TarEntrySpec {
  path: string;
  type?: 'File' | 'Directory' | 'SymbolicLink' | 'Link' | 'CharacterDevice' | 'FIFO';
  body?: string;
  linkpath?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

/**
 * A tar archive made entry by entry with node-tar (Header + ReadEntry into a Pack), so a
 * test can make layers no folder could produce: `../x`, writes through symlinks, whiteouts.
 */
export async function makeTar(entries: TarEntrySpec[], opts: { gzip?: boolean } = {}): Promise<Buffer> {
  const pack = new Pack({ preservePaths: true });
  const chunks: Buffer[] = [];
  pack.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const e of entries) {
    const body = e.body === undefined ? undefined : Buffer.from(e.body);
    const type = e.type ?? (e.path.endsWith('/') ? 'Directory' : 'File');
    const header = new Header({
      path: e.path,
      type,
      mode: e.mode ?? (type === 'Directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      size: body?.length ?? 0,
      mtime: new Date(0),
      ...(e.linkpath ? { linkpath: e.linkpath } : {}),
    });
    const entry = new ReadEntry(header);
    if (body?.length) entry.write(body);
    entry.end();
    pack.add(entry);
  }
  pack.end();
  await done;
  const tar = Buffer.concat(chunks);
  return opts.gzip ? gzipSync(tar) : tar;
}

export const digestOf = sha256Digest;
