import { chmod, chown, link, mkdir, symlink, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * A small root filesystem with what a Debian-built base image has: numeric owners, a setuid
 * binary, a private folder, symlinks (one absolute), a hardlink, and a FIFO (skipped by the packer).
 */
export async function makeRootfs(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'bin'), { recursive: true });
  await mkdir(path.join(dir, 'etc', 'app'), { recursive: true });
  await mkdir(path.join(dir, 'usr', 'lib'), { recursive: true });
  await mkdir(path.join(dir, 'root'), { recursive: true });
  await writeFile(path.join(dir, 'bin', 'tool'), '#!/bin/sh\necho tool\n');
  await chmod(path.join(dir, 'bin', 'tool'), 0o4755);
  await writeFile(path.join(dir, 'etc', 'app', 'config'), 'owned by 1000:1001\n');
  await chown(path.join(dir, 'etc', 'app', 'config'), 1000, 1001);
  await chown(path.join(dir, 'etc', 'app'), 1000, 1001);
  await chmod(path.join(dir, 'root'), 0o700);
  await writeFile(path.join(dir, 'root', 'secret'), 'root only\n');
  await chmod(path.join(dir, 'root', 'secret'), 0o600);
  await symlink('../../etc/app/config', path.join(dir, 'usr', 'lib', 'config-link'));
  await symlink('/bin/tool', path.join(dir, 'usr', 'lib', 'abs-link'));
  await link(path.join(dir, 'bin', 'tool'), path.join(dir, 'bin', 'tool-hardlink'));
  // A big file ahead of the hardlinked one, which once tripped node-tar's parallel packing.
  await writeFile(path.join(dir, 'bin', 'big'), Buffer.alloc(3 * 1024 * 1024, 'x'));
  execFileSync('mkfifo', [path.join(dir, 'etc', 'fifo')]);
}
