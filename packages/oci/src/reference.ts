import { HearthError } from '@hearth/core';
import { isDigest } from './digest.ts';

/**
 * An image reference split into its parts: `registry/repository[:tag][@digest]`.
 * A reference names a manifest; `digest` pins it, `tag` is a movable name.
 */
export interface ImageReference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;

/**
 * Parses "127.0.0.1:5000/hearth/node:latest", "hearth/node@sha256:…" and the like, by the
 * Docker rules: the first component is a registry when it holds a "." or ":" or is
 * "localhost"; otherwise `defaultRegistry` (docker.io when not given) is used. A reference
 * with neither tag nor digest gets the tag "latest". Throws INVALID_ARGUMENT naming the input.
 */
export function parseReference(ref: string, defaultRegistry?: string): ImageReference {
  const bad = (why: string) => new HearthError('INVALID_ARGUMENT', `invalid image reference ${JSON.stringify(ref)}: ${why}`);
  let rest = ref.trim();
  if (!rest) throw bad('it is empty');

  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw bad('the digest must be sha256:<64 lowercase hex>');
  }

  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`tag ${JSON.stringify(tag)} is not valid`);
  }

  const parts = rest.split('/');
  let registry: string;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    parts.shift();
  } else {
    registry = defaultRegistry ?? 'docker.io';
    if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  }
  if (!registry) throw bad('the registry is empty');
  for (const part of parts) {
    if (!COMPONENT.test(part)) {
      throw bad(`repository component ${JSON.stringify(part)} must be lowercase letters, digits and separators`);
    }
  }
  const repository = parts.join('/');
  if (repository.length > 255) throw bad('the repository name is longer than 255 characters');
  if (!tag && !digest) tag = 'latest';
  return { registry, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** The inverse of parseReference: `registry/repository[:tag][@digest]`. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}
