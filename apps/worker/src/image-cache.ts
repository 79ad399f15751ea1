import { ensureLayersUnpacked, parseReference, pullImage, RegistryClient, type ContentStore } from '@hearth/oci';
import type { HearthConfig } from '@hearth/core';
import { ATTR, SPANS, inSpan, isTracing } from '@hearth/core/telemetry';

/** What a sandbox needs from an image: its unpacked layers (lowest first) and its run config. */
export interface PreparedImage {
  digest: string;
  layers: string[];
  config: { Env?: string[]; Cmd?: string[]; Entrypoint?: string[]; WorkingDir?: string; User?: string };
}

/**
 * Pulls each image once (by digest) and unpacks each layer once. Concurrent cold starts of
 * one image share a single pull.
 */
export class ImageCache {
  private readonly prepared = new Map<string, Promise<PreparedImage>>();
  private readonly clients = new Map<string, RegistryClient>();

  constructor(
    private readonly config: HearthConfig,
    private readonly store: ContentStore,
  ) {}

  prepare(imageRef: string, digest: string): Promise<PreparedImage> {
    let pending = this.prepared.get(digest);
    if (!pending) {
      pending = this.pullAndUnpack(imageRef, digest);
      // A failed pull (registry down) must not be remembered: the next call tries again.
      pending.catch(() => this.prepared.delete(digest));
      this.prepared.set(digest, pending);
    }
    return pending;
  }

  /** The digest a tag points at now (`hearth/node:latest` for the node stem cells). */
  async resolveTag(registry: string, repository: string, tag: string): Promise<string> {
    const { digest } = await this.client(registry).getManifest(repository, tag);
    return digest;
  }

  private async pullAndUnpack(imageRef: string, digest: string): Promise<PreparedImage> {
    const ref = parseReference(`${imageRef}@${digest}`);
    // Spans only inside a call's trace: stem cells and warm-ups pull outside of any call.
    const traced = isTracing();
    const attributes = { [ATTR.imageDigest]: digest, 'hearth.image.ref': imageRef };
    const phase = <T>(name: string, run: () => Promise<T>): Promise<T> => (traced ? inSpan(name, { attributes }, run) : run());
    const image = await phase(SPANS.imagePull, () => pullImage({ store: this.store, client: this.client(ref.registry), ref }));
    const layers = await phase(SPANS.imageUnpack, () => ensureLayersUnpacked({ home: this.config.home, store: this.store, image }));
    const cfg = (image.config as { config?: PreparedImage['config'] }).config ?? {};
    return { digest, layers, config: cfg };
  }

  private client(registry: string): RegistryClient {
    let client = this.clients.get(registry);
    if (!client) {
      const isConfigured = registry === this.config.registry;
      const loopback = /^(localhost|127\.|\[::1\])/.test(registry);
      client = new RegistryClient({
        registry,
        insecure: isConfigured ? this.config.registryInsecure : loopback,
        ...(isConfigured && this.config.registryUsername ? { username: this.config.registryUsername } : {}),
        ...(isConfigured && this.config.registryPassword ? { password: this.config.registryPassword } : {}),
      });
      this.clients.set(registry, client);
    }
    return client;
  }
}
