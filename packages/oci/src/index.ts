export { parseReference, formatReference, type ImageReference } from './reference.ts';
export {
  MEDIA_TYPES,
  MANIFEST_ACCEPT,
  type Descriptor,
  type ImageManifest,
  type ImageIndex,
  type ImageConfig,
  type ImageRuntimeConfig,
  type Platform,
} from './media-types.ts';
export { sha256Digest, isDigest, assertDigest, digestHex } from './digest.ts';
export { openContentStore, type ContentStore, type WriteOptions } from './content-store.ts';
export { RegistryClient, type RegistryClientOptions, type ProgressEvent, type UploadOptions } from './registry-client.ts';
export { parseWwwAuthenticate, type AuthChallenge } from './registry-auth.ts';
export { pullImage, DEFAULT_MAX_BLOB_BYTES, type PulledImage, type PullOptions } from './pull.ts';
export { unpackLayer, DEFAULT_UNPACK_LIMITS, type UnpackLayerOptions, type UnpackLimits } from './unpack.ts';
export { ensureLayersUnpacked } from './layers.ts';
export { buildFunctionImage, type BuildFunctionImageOptions } from './build.ts';
export { pushRootfsImage, type PushRootfsImageOptions } from './push-rootfs.ts';
