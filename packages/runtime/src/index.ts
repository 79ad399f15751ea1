export type { Sandbox, SandboxOptions, SandboxRequest, SandboxResponse, SandboxImageConfig, SandboxLimits, InvokeOptions } from './sandbox.ts';
export { createRuncSandbox, instancePaths, RuncSandbox } from './runc/runc-sandbox.ts';
export { cleanupInstances } from './cleanup.ts';
export { buildBundleSpec, mergeEnv, SOCKET_PATH, type BundleSpecInput } from './runc/bundle-spec.ts';
export { InvokeClient } from './invoke-client.ts';
