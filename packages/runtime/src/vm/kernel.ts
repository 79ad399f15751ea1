/**
 * The guest kernel a microVM boots: a Debian cloud kernel plus the virtio modules the
 * guest init loads, as `infra/images/vm-kernel.ts` lays it out on disk:
 * `<home>/vm/kernel/<version>/{vmlinuz, config, modules/*.ko, kernel.json}`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { HearthError } from '@hearth/core';

export interface VmKernel {
  /** The kernel release, e.g. `6.1.0-56-cloud-amd64`; part of the initramfs cache key. */
  version: string;
  /** Absolute path of the bzImage. */
  vmlinuz: string;
  /** Absolute paths of the .ko files the guest loads, in load order (empty when built in). */
  modules: string[];
}

/** What kernel.json holds: paths relative to its folder. */
export interface VmKernelManifest {
  version: string;
  package: string;
  vmlinuz: string;
  modules: string[];
}

export function vmKernelRoot(home: string): string {
  return path.join(path.resolve(home), 'vm', 'kernel');
}

/**
 * The kernel fetched into `<home>/vm/kernel/` (the newest version if there are several).
 * Throws NOT_FOUND, naming the command that fetches one, when there is none.
 */
export async function loadVmKernel(home: string): Promise<VmKernel> {
  const root = vmKernelRoot(home);
  const versions = (await fs.readdir(root).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
  versions.sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  for (const version of versions) {
    const dir = path.join(root, version);
    const text = await fs.readFile(path.join(dir, 'kernel.json'), 'utf8').catch(() => undefined);
    if (!text) continue;
    const m = JSON.parse(text) as VmKernelManifest;
    return { version: m.version, vmlinuz: path.join(dir, m.vmlinuz), modules: m.modules.map((p) => path.join(dir, p)) };
  }
  throw new HearthError('NOT_FOUND', `no vm kernel in ${root}: run \`node --import tsx infra/images/vm-kernel.ts\` (HEARTH_HOME=${path.resolve(home)})`);
}
