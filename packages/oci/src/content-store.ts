import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { HearthError } from '@hearth/core';
import { Digester, digestHex } from './digest.ts';

/**
 * A content-addressed blob store, containerd style. A blob is named by its digest and
 * lives at `blobs/sha256/<hex>` once committed. Writes go to a private file under
 * `ingest/` first and are committed (renamed into place) only when their size and sha256
 * match the digest the caller expected, so a reader never sees partial or wrong content.
 */
export interface ContentStore {
  /** The folder this store lives in (`<home>/content`). */
  readonly root: string;
  has(digest: string): Promise<boolean>;
  /** Path of a committed blob (read-only). Throws NOT_FOUND. */
  path(digest: string): string;
  read(digest: string): Promise<Buffer>;
  /**
   * Writes through an ingest file; commits only when size and sha256 match `digest`, else
   * throws INVALID_ARGUMENT (details: expected, actual, size) and stores nothing.
   * `opts.size`, when given, is also enforced while streaming: a longer source is cut off.
   * `opts.maxBytes` caps the blob whatever its claimed size: past it the write stops with
   * TOO_LARGE naming the limit, and nothing is stored.
   */
  write(digest: string, data: Buffer | NodeJS.ReadableStream | AsyncIterable<Uint8Array>, opts?: WriteOptions): Promise<void>;
  delete(digest: string): Promise<void>;
}

/** Checks a write makes while it streams. */
export interface WriteOptions {
  /** The exact size the blob must have (from its descriptor). */
  size?: number;
  /** The most bytes accepted; more is TOO_LARGE. */
  maxBytes?: number;
}

class LocalContentStore implements ContentStore {
  readonly root: string;
  readonly #blobs: string;
  readonly #ingest: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.#blobs = path.join(this.root, 'blobs', 'sha256');
    this.#ingest = path.join(this.root, 'ingest');
  }

  #blobPath(digest: string): string {
    return path.join(this.#blobs, digestHex(digest));
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await stat(this.#blobPath(digest))).isFile();
    } catch {
      return false;
    }
  }

  path(digest: string): string {
    const p = this.#blobPath(digest);
    if (!existsSync(p)) throw new HearthError('NOT_FOUND', `blob ${digest} is not in the content store ${this.root}`);
    return p;
  }

  async read(digest: string): Promise<Buffer> {
    return readFile(this.path(digest));
  }

  async write(digest: string, data: Buffer | NodeJS.ReadableStream | AsyncIterable<Uint8Array>, opts: WriteOptions = {}): Promise<void> {
    const target = this.#blobPath(digest);
    await mkdir(this.#ingest, { recursive: true });
    await mkdir(this.#blobs, { recursive: true });
    // One ingest file per writer, so two writers of the same blob never share a file.
    const ingestPath = path.join(this.#ingest, `${digestHex(digest)}-${process.pid}-${randomBytes(4).toString('hex')}`);
    const digester = new Digester();
    const fh = await open(ingestPath, 'wx', 0o644);
    try {
      const chunks: AsyncIterable<Uint8Array> | Uint8Array[] = Buffer.isBuffer(data) ? [data] : (data as AsyncIterable<Uint8Array>);
      for await (const raw of chunks) {
        const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
        digester.update(chunk);
        if (opts.maxBytes !== undefined && digester.size > opts.maxBytes) {
          throw new HearthError('TOO_LARGE', `refused blob ${digest}: it is larger than the limit of ${opts.maxBytes} bytes`, {
            details: { expected: digest, limit: opts.maxBytes },
          });
        }
        if (opts.size !== undefined && digester.size > opts.size) {
          throw mismatch(digest, `more than the expected ${opts.size} bytes`, { expected: digest, expectedSize: opts.size, size: digester.size });
        }
        await fh.write(chunk);
      }
      await fh.close();
      const actual = digester.digest();
      if (opts.size !== undefined && digester.size !== opts.size) {
        throw mismatch(digest, `${digester.size} bytes instead of ${opts.size}`, { expected: digest, actual, expectedSize: opts.size, size: digester.size });
      }
      if (actual !== digest) {
        throw mismatch(digest, `content with digest ${actual}`, { expected: digest, actual, size: digester.size });
      }
      // Commit: rename is atomic, so the blob appears complete or not at all.
      await rename(ingestPath, target);
    } catch (err) {
      await fh.close().catch(() => {});
      await rm(ingestPath, { force: true });
      throw err;
    }
  }

  async delete(digest: string): Promise<void> {
    await rm(this.#blobPath(digest), { force: true });
  }
}

function mismatch(digest: string, got: string, details: Record<string, unknown>): HearthError {
  return new HearthError('INVALID_ARGUMENT', `refused blob ${digest}: got ${got}`, { details });
}

/** Opens (and lazily creates) the store at `root`, which is `<home>/content` in Hearth. */
export function openContentStore(root: string): ContentStore {
  return new LocalContentStore(root);
}
