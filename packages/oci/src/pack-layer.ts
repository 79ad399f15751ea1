import { createWriteStream, type Stats } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { Pack, type WriteEntry } from 'tar';
import { HearthError } from '@hearth/core';
import { Digester } from './digest.ts';
import { MEDIA_TYPES } from './media-types.ts';

/** A gzip layer written to a file, with both digests an image needs. */
export interface PackedLayer {
  file: string;
  mediaType: string;
  /** sha256 of the gzip bytes (the blob). */
  digest: string;
  /** sha256 of the uncompressed tar (the config's diff_id). */
  diffId: string;
  size: number;
}

const EPOCH = new Date(0);

/**
 * Packs a folder into a reproducible gzip layer with node-tar: entries sorted by name
 * (depth first), mtime 0, no atime/ctime/uname/gname/inode data; numeric owners and modes
 * kept unless `owner` overrides them; hardlinks inside the folder kept; sockets, FIFOs and
 * device files skipped. With `prefix` the folder's contents go under `<prefix>/` and an entry
 * for `<prefix>/` itself is written; without it the folder is the layer's root.
 */
export async function packLayer(opts: { dir: string; out: string; prefix?: string; owner?: { uid: number; gid: number } }): Promise<PackedLayer> {
  const dir = path.resolve(opts.dir);
  const prefix = opts.prefix === undefined ? undefined : normalizePrefix(opts.prefix);
  const entries = await sortedTree(dir);
  if (prefix) entries.unshift('.');

  const onWriteEntry = (entry: WriteEntry) => {
    const st = entry.stat;
    if (!st) return;
    // A copy: node-tar's own bookkeeping (hardlink detection) keeps using the real stat.
    const copy = Object.assign(Object.create(Object.getPrototypeOf(st) as object) as Stats, st);
    Object.assign(copy, { atime: undefined, ctime: undefined, birthtime: undefined, mtime: EPOCH, dev: undefined, ino: undefined, nlink: undefined });
    if (opts.owner) Object.assign(copy, { uid: opts.owner.uid, gid: opts.owner.gid });
    entry.stat = copy;
    entry.myuser = '';
  };
  // jobs: 1 — with parallel stats, node-tar 7.5 writes a broken archive (and throws "write
  // after end") when a hardlinked file waits behind a large one. Sequential is still fast.
  const pack = new Pack({ cwd: dir, noDirRecurse: true, portable: false, mtime: EPOCH, jobs: 1, onWriteEntry, ...(prefix ? { prefix } : {}) });

  const diff = new Digester();
  const blob = new Digester();
  const tap = (d: Digester) =>
    new Transform({
      transform(chunk: Buffer, _enc, cb) {
        d.update(chunk);
        cb(null, chunk);
      },
    });
  for (const e of entries) pack.add(e);
  pack.end();
  await pipeline(pack as unknown as NodeJS.ReadableStream, tap(diff), createGzip(), tap(blob), createWriteStream(opts.out));
  return { file: opts.out, mediaType: MEDIA_TYPES.ociLayerGzip, digest: blob.digest(), diffId: diff.digest(), size: blob.size };
}

function normalizePrefix(prefix: string): string {
  const parts = prefix.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) {
    throw new HearthError('INVALID_ARGUMENT', `layer prefix ${JSON.stringify(prefix)} must name a folder without ".."`);
  }
  return parts.join('/');
}

/** Every path under `dir`, relative, depth first, names compared bytewise (like GNU tar --sort=name). */
async function sortedTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const list = await readdir(path.join(dir, rel), { withFileTypes: true });
    list.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    for (const d of list) {
      const child = rel ? `${rel}/${d.name}` : d.name;
      out.push(child);
      if (d.isDirectory()) await walk(child);
    }
  };
  await walk('');
  return out;
}
