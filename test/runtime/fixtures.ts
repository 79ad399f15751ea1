/**
 * Shared fixtures for the runtime tests: base rootfs folders built from Debian packages
 * (cached across runs, keyed by the recipe and bootstrap sources), a scratch home, and
 * checks that an instance left nothing behind.
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { assembleBaseRootfs, baseImageConfig, type BaseKind } from '../../infra/images/rootfs.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CACHE = process.env.HEARTH_TEST_CACHE ?? '/tmp/hearth-test-cache';

async function recipeHash(kind: BaseKind): Promise<string> {
  const hash = crypto.createHash('sha256');
  hash.update(await fs.readFile(path.join(ROOT, 'infra/images/rootfs.ts')));
  const dir = path.join(ROOT, 'packages/runtime/bootstraps', kind);
  for (const name of (await fs.readdir(dir)).sort()) hash.update(name).update(await fs.readFile(path.join(dir, name)));
  return hash.digest('hex').slice(0, 12);
}

/** One builder at a time across test processes (node --test runs files in parallel). */
async function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  for (let waited = 0; ; waited += 100) {
    try {
      const fh = await fs.open(lockPath, 'wx');
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = Date.now() - (await fs.stat(lockPath).then((s) => s.mtimeMs, () => Date.now()));
      if (age > 10 * 60_000) await fs.rm(lockPath, { force: true }); // left by a killed run
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockPath, { force: true });
  }
}

/** The base rootfs of `kind`, built once per recipe version and reused. */
export async function baseRootfs(kind: BaseKind): Promise<string> {
  const dir = path.join(CACHE, `base-${kind}-${await recipeHash(kind)}`);
  const ready = () => fs.access(path.join(dir, kind === 'node' ? 'opt/hearth/bootstrap.mjs' : 'opt/hearth/hearth-exec')).then(() => true, () => false);
  if (await ready()) return dir;
  await fs.mkdir(CACHE, { recursive: true });
  await withLock(path.join(CACHE, `base-${kind}.lock`), async () => {
    if (await ready()) return;
    await assembleBaseRootfs(kind, dir, { cacheDir: path.join(CACHE, 'debs') });
    // earlier recipe versions are dead weight (~110 MB each for node)
    for (const name of await fs.readdir(CACHE)) {
      if (name.startsWith(`base-${kind}-`) && name !== path.basename(dir) && !name.endsWith('.lock')) {
        await fs.rm(path.join(CACHE, name), { recursive: true, force: true });
      }
    }
  });
  return dir;
}

/** The image config a function image built on base `kind` would carry. */
export function functionImageConfig(kind: BaseKind, handler: string) {
  const base = baseImageConfig(kind);
  return { Env: [...base.env, `HEARTH_HANDLER=/function/${handler}`], Cmd: base.cmd, WorkingDir: base.workingDir };
}

/** A scratch HEARTH_HOME (short, so instance socket paths stay under 108 bytes). */
export async function scratchHome(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'hearth-rt-'));
}

export function testPrefix(): string {
  return `test-rt-${crypto.randomBytes(3).toString('hex')}-`;
}

/** A layer dir holding /function/<name> files. */
export async function functionLayer(home: string, name: string, files: Record<string, string>, mode = 0o644): Promise<string> {
  const layer = path.join(home, 'layers', name);
  for (const [file, text] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(layer, 'function', file)), { recursive: true });
    await fs.writeFile(path.join(layer, 'function', file), text, { mode });
  }
  return layer;
}

export function runcIds(): string[] {
  const out = execFileSync('runc', ['list', '--format', 'json'], { encoding: 'utf8' });
  return ((JSON.parse(out) as { id: string }[] | null) ?? []).map((c) => c.id);
}

export function mountsMentioning(text: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(text));
}

/** What "nothing left" means for a container instance: no runc container, no mount, no folder. */
export async function leftovers(home: string, id: string): Promise<string[]> {
  const found: string[] = [];
  if (runcIds().includes(id)) found.push(`runc container ${id}`);
  for (const m of mountsMentioning(path.join(home, 'instances', id))) found.push(`mount ${m}`);
  if (await fs.access(path.join(home, 'instances', id)).then(() => true, () => false)) found.push(`folder instances/${id}`);
  if (await fs.access(`/sys/fs/cgroup/memory/hearth/${id}`).then(() => true, () => false)) found.push(`cgroup hearth/${id}`);
  return found;
}
