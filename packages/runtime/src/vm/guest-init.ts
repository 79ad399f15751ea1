/**
 * The guest's /init (bootstraps/vm/hearth-vm-init.c), compiled once per source version
 * into `<home>/vm/init/<hash>/hearth-vm-init` (static, so it needs nothing from the image).
 */
import crypto from 'node:crypto';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { HearthError } from '@hearth/core';

const run = promisify(execFile);
const SOURCE = fileURLToPath(new URL('../../bootstraps/vm/hearth-vm-init.c', import.meta.url));

export interface GuestInit {
  /** The static binary on the host. */
  path: string;
  /** Hash of the source: part of every initramfs cache key. */
  version: string;
}

const building = new Map<string, Promise<GuestInit>>();

export async function ensureGuestInit(home: string): Promise<GuestInit> {
  const source = await fs.readFile(SOURCE);
  const version = crypto.createHash('sha256').update(source).digest('hex').slice(0, 16);
  const key = `${path.resolve(home)}\0${version}`;
  let pending = building.get(key);
  if (!pending) {
    pending = compile(home, version).catch((err: unknown) => {
      building.delete(key);
      throw err;
    });
    building.set(key, pending);
  }
  return pending;
}

async function compile(home: string, version: string): Promise<GuestInit> {
  const dir = path.join(path.resolve(home), 'vm', 'init', version);
  const binary = path.join(dir, 'hearth-vm-init');
  if (await fs.access(binary).then(() => true, () => false)) return { path: binary, version };
  await fs.mkdir(dir, { recursive: true });
  const tmp = `${binary}.tmp-${process.pid}`;
  try {
    await run('gcc', ['-static', '-O2', '-Wall', '-o', tmp, SOURCE]);
  } catch (err) {
    throw new HearthError('UNAVAILABLE', `cannot compile the vm guest init (needs gcc and libc6-dev): ${(err as { stderr?: string }).stderr ?? (err as Error).message}`, { cause: err });
  }
  await fs.rename(tmp, binary);
  return { path: binary, version };
}
