import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { openDatabase, runMigrations } from '@hearth/core/db';
import { spawnPrefixed, type PrefixedChild } from './child.ts';
import { REPO_ROOT } from './services/index.ts';

/**
 * Brings the database schema up to date. An advisory lock keeps a `npm start` and a
 * `npm test` that start at the same moment from migrating the same database twice.
 */
export async function migrate(databaseUrl: string): Promise<void> {
  const lock = new pg.Client({ connectionString: databaseUrl });
  await lock.connect();
  const database = openDatabase(databaseUrl);
  try {
    await lock.query("SELECT pg_advisory_lock(hashtext('hearth-migrations'))");
    await runMigrations(database.db);
  } finally {
    await database.close();
    await lock.end();
  }
}

export const BUILD_BASE_SCRIPT = path.join(REPO_ROOT, 'infra/images/build-base.ts');

/**
 * Builds Hearth's base images and pushes them to the registry (the script skips what is
 * already there). Runs the script as a child so the stack does not depend on its exports.
 */
export async function ensureBaseImages(
  env: Record<string, string | undefined>,
  log: (line: string) => void,
  track: (child: PrefixedChild) => void = () => {},
): Promise<void> {
  if (!fs.existsSync(BUILD_BASE_SCRIPT)) {
    log(`warning: ${path.relative(REPO_ROOT, BUILD_BASE_SCRIPT)} is missing; no base images were built`);
    return;
  }
  const registry = env.HEARTH_REGISTRY ?? '127.0.0.1:5000';
  const child = spawnPrefixed('images', process.execPath, ['--import', 'tsx', BUILD_BASE_SCRIPT, '--registry', registry], { env, detached: false });
  track(child);
  const code = await child.exited;
  if (code !== 0) throw new Error(`building the base images failed (build-base.ts exited with ${code}); see the [images] lines above`);
}

export const VM_KERNEL_SCRIPT = path.join(REPO_ROOT, 'infra/images/vm-kernel.ts');

/**
 * Fetches the guest kernel for `isolation: vm` into `<HEARTH_VM_HOME or HEARTH_HOME>/vm/kernel`
 * (nothing when it is there). A failure is logged, not thrown: only vm functions need it.
 */
export async function ensureVmKernel(
  env: Record<string, string | undefined>,
  log: (line: string) => void,
  track: (child: PrefixedChild) => void = () => {},
): Promise<boolean> {
  const home = env.HEARTH_VM_HOME || env.HEARTH_HOME;
  const child = spawnPrefixed('vm-kernel', process.execPath, ['--import', 'tsx', VM_KERNEL_SCRIPT], { env: { ...env, ...(home ? { HEARTH_HOME: home } : {}) }, detached: false });
  track(child);
  const code = await child.exited;
  if (code !== 0) log(`warning: the vm kernel could not be fetched (vm-kernel.ts exited with ${code}); functions with isolation: vm will not start`);
  return code === 0;
}
