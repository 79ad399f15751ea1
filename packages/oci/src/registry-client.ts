import { open, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { HearthError, type ErrorCode } from '@hearth/core';
import { assertDigest, sha256Digest } from './digest.ts';
import { MANIFEST_ACCEPT } from './media-types.ts';
import { RegistryAuth } from './registry-auth.ts';

export interface RegistryClientOptions {
  /** host[:port], e.g. "127.0.0.1:5000". */
  registry: string;
  /** Plain HTTP instead of HTTPS. */
  insecure?: boolean;
  username?: string;
  password?: string;
  userAgent?: string;
}

/** Bytes moved for one blob so far. */
export interface ProgressEvent {
  digest: string;
  done: number;
  total: number;
}

export interface UploadOptions {
  onProgress?: (e: ProgressEvent) => void;
  /** Bytes per PATCH request (default 8 MiB; S3-backed registries need at least 5 MiB). */
  chunkSize?: number;
  /** Try a cross-repository mount from this repository before uploading. */
  mountFrom?: string;
}

type Response = Dispatcher.ResponseData;
type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const DEFAULT_CHUNK = 8 * 1024 * 1024;

/**
 * A client for one registry, speaking the OCI distribution spec over undici: manifests,
 * blobs, chunked uploads and cross-repository mounts, with Basic and Bearer-token auth
 * (tokens cached per scope, a request retried once after a 401). Errors are HearthErrors
 * that name the registry and the thing asked for.
 */
export class RegistryClient {
  readonly registry: string;
  readonly insecure: boolean;
  readonly #base: string;
  readonly #userAgent: string;
  readonly #auth: RegistryAuth;

  constructor(opts: RegistryClientOptions) {
    this.registry = opts.registry;
    this.insecure = opts.insecure ?? false;
    const host = opts.registry === 'docker.io' ? 'registry-1.docker.io' : opts.registry;
    this.#base = `${this.insecure ? 'http' : 'https'}://${host}`;
    this.#userAgent = opts.userAgent ?? 'hearth-oci/0.1';
    this.#auth = new RegistryAuth({ registry: opts.registry, username: opts.username, password: opts.password, userAgent: this.#userAgent });
  }

  /** Checks that the registry answers the distribution API (and that credentials, if any, work). */
  async ping(): Promise<void> {
    const res = await this.#send('GET', '/v2/', { scopes: [] });
    await res.body.dump();
    if (res.statusCode !== 200) throw this.#statusError(res.statusCode, `GET /v2/ answered ${res.statusCode}`);
  }

  /** Fetches a manifest or index by tag or digest; `digest` is the sha256 of the bytes as served. */
  async getManifest(repo: string, reference: string): Promise<{ digest: string; mediaType: string; bytes: Buffer; manifest: any }> {
    const res = await this.#send('GET', `/v2/${repo}/manifests/${reference}`, {
      scopes: [pullScope(repo)],
      headers: { accept: MANIFEST_ACCEPT },
    });
    const name = `${this.registry}/${repo}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;
    if (res.statusCode === 404) {
      await res.body.dump();
      throw new HearthError('NOT_FOUND', `manifest ${name} not found`);
    }
    if (res.statusCode !== 200) throw await this.#failure(res, `manifest ${name}`);
    const bytes = await readLimited(res, MAX_MANIFEST_BYTES, `manifest ${name}`);
    const digest = sha256Digest(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new HearthError('BAD_GATEWAY', `registry ${this.registry} served manifest ${name} whose content has digest ${digest}`, {
        details: { expected: reference, actual: digest },
      });
    }
    let manifest: any;
    try {
      manifest = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw new HearthError('BAD_GATEWAY', `registry ${this.registry} served manifest ${name} that is not JSON`);
    }
    if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) {
      throw new HearthError('BAD_GATEWAY', `registry ${this.registry} served manifest ${name} that is not a JSON object`);
    }
    const contentType = headerValue(res, 'content-type')?.split(';')[0]?.trim();
    const mediaType: string = typeof manifest?.mediaType === 'string' ? manifest.mediaType : (contentType ?? '');
    return { digest, mediaType, bytes, manifest };
  }

  /** Stores a manifest under a tag or its digest; returns its digest. */
  async putManifest(repo: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const res = await this.#send('PUT', `/v2/${repo}/manifests/${reference}`, {
      scopes: [pushScope(repo)],
      headers: { 'content-type': mediaType },
      body: bytes,
    });
    if (res.statusCode !== 201 && res.statusCode !== 200) throw await this.#failure(res, `push of manifest ${this.registry}/${repo}:${reference}`);
    await res.body.dump();
    return sha256Digest(bytes);
  }

  /** Deletes a manifest (by digest, as the spec requires). */
  async deleteManifest(repo: string, digest: string): Promise<void> {
    assertDigest(digest);
    const res = await this.#send('DELETE', `/v2/${repo}/manifests/${digest}`, { scopes: [deleteScope(repo)] });
    if (res.statusCode === 404) {
      await res.body.dump();
      throw new HearthError('NOT_FOUND', `manifest ${this.registry}/${repo}@${digest} not found`);
    }
    if (res.statusCode !== 202 && res.statusCode !== 200) throw await this.#failure(res, `delete of manifest ${this.registry}/${repo}@${digest}`);
    await res.body.dump();
  }

  /** Deletes a blob from a repository (registries may refuse: UNSUPPORTED → PERMISSION_DENIED/INVALID_ARGUMENT). */
  async deleteBlob(repo: string, digest: string): Promise<void> {
    assertDigest(digest);
    const res = await this.#send('DELETE', `/v2/${repo}/blobs/${digest}`, { scopes: [deleteScope(repo)] });
    if (res.statusCode === 404) {
      await res.body.dump();
      return;
    }
    if (res.statusCode !== 202 && res.statusCode !== 200) throw await this.#failure(res, `delete of blob ${digest} in ${this.registry}/${repo}`);
    await res.body.dump();
  }

  /** The blob's size when the repository has it, else undefined. */
  async hasBlob(repo: string, digest: string): Promise<number | undefined> {
    assertDigest(digest);
    const res = await this.#send('HEAD', `/v2/${repo}/blobs/${digest}`, { scopes: [pullScope(repo)], redirects: 5 });
    await res.body.dump();
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw this.#statusError(res.statusCode, `HEAD of blob ${digest} in ${this.registry}/${repo} answered ${res.statusCode}`);
    const len = Number(headerValue(res, 'content-length'));
    return Number.isFinite(len) ? len : 0;
  }

  /** A stream of the blob's bytes (redirects followed). Not verified here: the content store verifies on write. */
  async getBlob(repo: string, digest: string): Promise<Readable> {
    assertDigest(digest);
    const res = await this.#send('GET', `/v2/${repo}/blobs/${digest}`, { scopes: [pullScope(repo)], redirects: 5 });
    if (res.statusCode === 404) {
      await res.body.dump();
      throw new HearthError('NOT_FOUND', `blob ${digest} not found in ${this.registry}/${repo}`);
    }
    if (res.statusCode !== 200) throw await this.#failure(res, `blob ${digest} in ${this.registry}/${repo}`);
    return res.body;
  }

  /**
   * Uploads a blob unless the repository already has it: a cross-repository mount when
   * `mountFrom` is given, else POST, PATCH chunks with Content-Range, PUT ?digest=.
   * `source` is the bytes or a file path.
   */
  async uploadBlob(repo: string, digest: string, source: Buffer | string, opts: UploadOptions = {}): Promise<void> {
    assertDigest(digest);
    const total = typeof source === 'string' ? (await stat(source)).size : source.length;
    const progress = (done: number) => opts.onProgress?.({ digest, done, total });
    if ((await this.hasBlob(repo, digest)) !== undefined) {
      progress(total);
      return;
    }
    const started = await this.#startUpload(repo, digest, opts.mountFrom);
    if (started.mounted) {
      progress(total);
      return;
    }
    let location = started.location;
    const chunkSize = Math.max(1, opts.chunkSize ?? DEFAULT_CHUNK);
    const fh = typeof source === 'string' ? await open(source, 'r') : undefined;
    try {
      const buf = fh ? Buffer.allocUnsafe(Math.min(chunkSize, Math.max(total, 1))) : undefined;
      for (let offset = 0; offset < total; ) {
        const len = Math.min(chunkSize, total - offset);
        let chunk: Buffer;
        if (fh && buf) {
          const { bytesRead } = await fh.read(buf, 0, len, offset);
          if (bytesRead !== len) throw new HearthError('INTERNAL', `${source} changed while it was being uploaded`);
          chunk = buf.subarray(0, len);
        } else {
          chunk = (source as Buffer).subarray(offset, offset + len);
        }
        const res = await this.#send('PATCH', location, {
          scopes: [pushScope(repo)],
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${offset}-${offset + len - 1}`,
            'content-length': String(len),
          },
          body: chunk,
        });
        if (res.statusCode !== 202) throw await this.#failure(res, `upload of blob ${digest} to ${this.registry}/${repo} (bytes ${offset}-${offset + len - 1})`);
        await res.body.dump();
        location = this.#location(res) ?? location;
        offset += len;
        progress(offset);
      }
    } finally {
      await fh?.close();
    }
    const done = new URL(location, this.#base);
    done.searchParams.set('digest', digest);
    const res = await this.#send('PUT', done.toString(), {
      scopes: [pushScope(repo)],
      headers: { 'content-length': '0' },
    });
    if (res.statusCode !== 201 && res.statusCode !== 204) throw await this.#failure(res, `upload of blob ${digest} to ${this.registry}/${repo}`);
    await res.body.dump();
    if (total === 0) progress(0);
  }

  /** Cross-repository mount of a blob the registry holds in `fromRepo`; false when the registry declined. */
  async mountBlob(repo: string, digest: string, fromRepo: string): Promise<boolean> {
    assertDigest(digest);
    const started = await this.#startUpload(repo, digest, fromRepo);
    if (started.mounted) return true;
    // The registry opened an upload session instead; give it back.
    const res = await this.#send('DELETE', started.location, { scopes: [pushScope(repo)] }).catch(() => undefined);
    await res?.body.dump();
    return false;
  }

  async #startUpload(repo: string, digest: string, mountFrom?: string): Promise<{ mounted: true } | { mounted: false; location: string }> {
    const scopes = [pushScope(repo)];
    let path = `/v2/${repo}/blobs/uploads/`;
    if (mountFrom && mountFrom !== repo) {
      path += `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(mountFrom)}`;
      scopes.push(pullScope(mountFrom));
    }
    const res = await this.#send('POST', path, { scopes, headers: { 'content-length': '0' } });
    if (res.statusCode === 201) {
      await res.body.dump();
      return { mounted: true };
    }
    if (res.statusCode !== 202) throw await this.#failure(res, `upload of blob ${digest} to ${this.registry}/${repo}`);
    await res.body.dump();
    const location = this.#location(res);
    if (!location) throw new HearthError('BAD_GATEWAY', `registry ${this.registry} started an upload without a Location header`);
    return { mounted: false, location };
  }

  #location(res: Response): string | undefined {
    const loc = headerValue(res, 'location');
    return loc ? new URL(loc, this.#base).toString() : undefined;
  }

  /** One request with auth: a 401 is answered once (token or basic), then it is an error. */
  async #send(
    method: Method,
    pathOrUrl: string,
    opts: { scopes: string[]; headers?: Record<string, string>; body?: Buffer; redirects?: number },
  ): Promise<Response> {
    const url = new URL(pathOrUrl, this.#base);
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...opts.headers };
      const authorization = this.#auth.headerFor(opts.scopes);
      if (authorization) headers.authorization = authorization;
      let res: Response;
      try {
        res = await request(url, {
          method,
          headers,
          ...(opts.body ? { body: opts.body } : {}),
          ...(opts.redirects ? { maxRedirections: opts.redirects } : {}),
        });
      } catch (err) {
        throw new HearthError('UNAVAILABLE', `registry ${this.registry} is unreachable: ${(err as Error).message}`, { cause: err });
      }
      if (res.statusCode !== 401) return res;
      await res.body.dump();
      if (attempt > 0) {
        throw new HearthError('UNAUTHENTICATED', `registry ${this.registry} refused ${method} ${url.pathname}: the credentials were not accepted`);
      }
      await this.#auth.handleChallenge(headerValue(res, 'www-authenticate'), opts.scopes);
    }
  }

  #statusError(status: number, message: string): HearthError {
    return new HearthError(codeForStatus(status), `registry ${this.registry}: ${message}`);
  }

  /** Turns a non-success response into a HearthError with the registry's own error message. */
  async #failure(res: Response, what: string): Promise<HearthError> {
    let detail = '';
    try {
      const text = (await res.body.text()).slice(0, 2000);
      try {
        const body = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
        const e = body.errors?.[0];
        if (e) detail = `${e.code ?? ''}${e.message ? `: ${e.message}` : ''}`;
      } catch {
        detail = text.trim().slice(0, 200);
      }
    } catch {
      // the body is only decoration for the message
    }
    return new HearthError(codeForStatus(res.statusCode), `registry ${this.registry}: ${what} failed with ${res.statusCode}${detail ? ` (${detail})` : ''}`, {
      details: { status: res.statusCode },
    });
  }
}

const pullScope = (repo: string) => `repository:${repo}:pull`;
const pushScope = (repo: string) => `repository:${repo}:pull,push`;
const deleteScope = (repo: string) => `repository:${repo}:delete`;

function codeForStatus(status: number): ErrorCode {
  if (status === 400) return 'INVALID_ARGUMENT';
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'PERMISSION_DENIED';
  if (status === 404) return 'NOT_FOUND';
  if (status === 405) return 'PERMISSION_DENIED';
  if (status === 413) return 'TOO_LARGE';
  if (status === 429 || status === 502 || status === 503 || status === 504) return 'UNAVAILABLE';
  return 'BAD_GATEWAY';
}

function headerValue(res: Response, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      res.body.destroy();
      throw new HearthError('TOO_LARGE', `${what} is larger than ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
