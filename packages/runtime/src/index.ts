export type { Sandbox, SandboxOptions, SandboxRequest, SandboxResponse, SandboxImageConfig, SandboxLimits, InvokeOptions } from './sandbox.ts';
export { createRuncSandbox, instancePaths } from './runc/runc-sandbox.ts';
export { cleanupInstances } from './cleanup.ts';
export { buildBundleSpec, SOCKET_PATH } from './runc/bundle-spec.ts';
