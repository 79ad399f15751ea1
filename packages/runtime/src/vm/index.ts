/** The microVM driver (`isolation: vm`): see README.md in this folder. */
export { createVmSandbox, vmInstancePaths, VmSandbox, VM_READY_TIMEOUT_MS, type VmSandboxOptions } from './vm-sandbox.ts';
export { loadVmKernel, vmKernelRoot, type VmKernel, type VmKernelManifest } from './kernel.ts';
export { probeAccel } from './accel.ts';
export { ensureInitramfs, initramfsDir, type Initramfs } from './initramfs.ts';
export { cleanupVmInstances } from './cleanup.ts';
export type { VmAccel } from './qemu.ts';
