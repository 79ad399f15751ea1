import { createHash, type Hash } from 'node:crypto';
import { HearthError } from '@hearth/core';

/** A content digest as the OCI specs write it: `sha256:<64 lowercase hex>`. Only sha256 is supported. */
export const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: string): boolean {
  return DIGEST_PATTERN.test(value);
}

/** Returns `value` when it is a sha256 digest; otherwise throws INVALID_ARGUMENT naming it. */
export function assertDigest(value: string): string {
  if (!isDigest(value)) {
    throw new HearthError('INVALID_ARGUMENT', `not a sha256 digest: ${JSON.stringify(value)} (expected sha256:<64 hex>)`);
  }
  return value;
}

/** The hex part of a digest, used as the file name in content-addressed folders. */
export function digestHex(digest: string): string {
  return assertDigest(digest).slice('sha256:'.length);
}

export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Incremental sha256 over a stream of chunks, counting bytes as it goes. */
export class Digester {
  readonly #hash: Hash = createHash('sha256');
  size = 0;

  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
    this.size += chunk.length;
  }

  digest(): string {
    return `sha256:${this.#hash.digest('hex')}`;
  }
}
