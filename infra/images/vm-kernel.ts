/**
 * Fetches the guest kernel for `isolation: vm`: Debian's `linux-image-cloud-amd64` (the
 * versioned package it depends on) with `apt-get download` + `dpkg-deb -x`, keeping the
 * bzImage, its config and the virtio modules the guest init loads, in
 * `<HEARTH_HOME>/vm/kernel/<version>/` (see packages/runtime/src/vm/kernel.ts).
 * An existing version is not fetched again.
 * Usage: node --import tsx infra/images/vm-kernel.ts [--force]   (HEARTH_HOME as `npm start`)
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { HearthError, loadConfig } from '@hearth/core';
import { loadVmKernel, vmKernelRoot, type VmKernel, type VmKernelManifest } from '@hearth/runtime';

const run = promisify(execFile);
const META_PACKAGE = 'linux-image-cloud-amd64';

/**
 * The modules the guest needs for its invoke port, in load order, each with the config
 * symbol that says whether it is a module (=m), built in (=y) or missing.
 */
const MODULES: Array<{ name: string; symbol: string }> = [
  { name: 'virtio_ring', symbol: 'CONFIG_VIRTIO' },
  { name: 'virtio', symbol: 'CONFIG_VIRTIO' },
  { name: 'virtio_mmio', symbol: 'CONFIG_VIRTIO_MMIO' },
  { name: 'virtio_console', symbol: 'CONFIG_VIRTIO_CONSOLE' },
];

/** The versioned kernel package the meta package points at, e.g. linux-image-6.1.0-56-cloud-amd64. */
async function versionedPackage(): Promise<string> {
  const { stdout } = await run('apt-cache', ['depends', META_PACKAGE]);
  const m = stdout.match(/Depends:\s*(linux-image-\S+-cloud-amd64)/);
  if (!m) throw new HearthError('UNAVAILABLE', `apt-cache knows no ${META_PACKAGE}: run apt-get update (Debian 12 main)`);
  return m[1]!;
}

async function findFile(dir: string, name: string): Promise<string | undefined> {
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      const found = await findFile(p, name);
      if (found) return found;
    } else if (entry.name === name) {
      return p;
    }
  }
  return undefined;
}

/** Downloads and unpacks the kernel unless its version is already there; returns it. */
export async function fetchVmKernel(opts: { home: string; force?: boolean; log?: (line: string) => void }): Promise<VmKernel> {
  const log = opts.log ?? (() => {});
  const pkg = await versionedPackage();
  const version = pkg.replace(/^linux-image-/, '');
  const root = vmKernelRoot(opts.home);
  const dest = path.join(root, version);
  if (!opts.force && (await fs.access(path.join(dest, 'kernel.json')).then(() => true, () => false))) {
    return loadVmKernel(opts.home);
  }
  log(`fetching ${pkg}`);
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'hearth-vm-kernel-'));
  // apt's _apt user downloads into the folder when it can; it cannot enter a 0700 mkdtemp
  await fs.chmod(tmp, 0o755);
  try {
    await run('apt-get', ['download', '-qq', pkg], { cwd: tmp });
    const deb = (await fs.readdir(tmp)).find((n) => n.endsWith('.deb'));
    if (!deb) throw new HearthError('UNAVAILABLE', `apt-get download ${pkg} produced no .deb`);
    const x = path.join(tmp, 'x');
    await run('dpkg-deb', ['-x', path.join(tmp, deb), x]);

    const staging = path.join(root, `.tmp-${version}-${process.pid}`);
    await fs.rm(staging, { recursive: true, force: true });
    await fs.mkdir(path.join(staging, 'modules'), { recursive: true });
    await fs.copyFile(path.join(x, 'boot', `vmlinuz-${version}`), path.join(staging, 'vmlinuz'));
    await fs.copyFile(path.join(x, 'boot', `config-${version}`), path.join(staging, 'config'));
    const config = await fs.readFile(path.join(staging, 'config'), 'utf8');

    const modules: string[] = [];
    const moduleDir = path.join(x, 'lib', 'modules', version, 'kernel');
    for (const { name, symbol } of MODULES) {
      const value = config.match(new RegExp(`^${symbol}=(.)`, 'm'))?.[1];
      if (value === 'y') continue;
      if (value !== 'm') throw new HearthError('UNAVAILABLE', `${pkg} has no ${symbol}: the guest cannot reach its invoke port`);
      const ko = await findFile(moduleDir, `${name}.ko`);
      if (!ko) throw new HearthError('UNAVAILABLE', `${pkg} has no ${name}.ko (compressed modules are not supported)`);
      await fs.copyFile(ko, path.join(staging, 'modules', `${name}.ko`));
      modules.push(`modules/${name}.ko`);
    }
    const manifest: VmKernelManifest = { version, package: pkg, vmlinuz: 'vmlinuz', modules };
    await fs.writeFile(path.join(staging, 'kernel.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await fs.rm(dest, { recursive: true, force: true });
    await fs.rename(staging, dest);
    log(`vm kernel ${version} in ${dest}`);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
  return loadVmKernel(opts.home);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { force: { type: 'boolean', default: false } } });
  const { home } = loadConfig(process.env);
  fetchVmKernel({ home, force: values.force, log: (l) => console.log(l) })
    .then((k) => console.log(JSON.stringify(k)))
    .catch((err: unknown) => {
      console.error(`vm-kernel: ${(err as Error).message}`);
      process.exit(1);
    });
}
