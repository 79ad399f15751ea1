/**
 * Shared fixtures for the runtime tests: base images pulled from the dev registry and
 * unpacked as the worker does (pullBase), or base rootfs folders built from Debian packages
 * (cached across runs, keyed by the recipe and bootstrap sources); function code layers;
 * scratch homes; and checks that an instance left nothing behind.
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryClient, ensureLayersUnpacked, openContentStore, pullImage } from '@hearth/oci';
import assert from 'node:assert/strict';
import { isHearthError, type HearthError } from '@hearth/core';
import { createRuncSandbox, type RuncSandbox, type SandboxImageConfig, type SandboxOptions, type SandboxRequest } from '@hearth/runtime';
import { assembleBaseRootfs, baseImageConfig, type BaseKind } from '../../infra/images/rootfs.ts';
import { testEnv } from '../helpers/services.ts';

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

/** Every runc container (id and status) on the machine. */
export function runcContainers(): { id: string; status: string }[] {
  // `runc list` fails ("stat /run/runc/<id>: no such file") when another test's container
  // is deleted while it lists: ask again
  for (let attempt = 1; ; attempt++) {
    try {
      const out = execFileSync('runc', ['list', '--format', 'json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return ((JSON.parse(out) as { id: string; status: string }[] | null) ?? []).map((c) => ({ id: c.id, status: c.status }));
    } catch (err) {
      if (attempt >= 5 || !/no such file or directory/.test(String((err as { stderr?: string }).stderr))) throw err;
    }
  }
}

export function runcIds(): string[] {
  return runcContainers().map((c) => c.id);
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

// ---------------------------------------------------------------- pulled base images

/** A base image as a sandbox gets it: unpacked layer dirs (lowest first) and the image's `config`. */
export interface PulledBase {
  reference: string;
  layers: string[];
  /** The layers' diff ids, in the same order. */
  diffIds: string[];
  /** The manifest's digest (sha256:...). */
  digest: string;
  imageConfig: SandboxImageConfig;
}

/**
 * Pulls `<registry>/hearth/<kind>:latest` from the dev registry into `home` and unpacks its
 * layers, the way the worker does (pullImage + ensureLayersUnpacked).
 */
export async function pullBase(home: string, kind: BaseKind, registry = testEnv().registry): Promise<PulledBase> {
  return pullUnpacked(home, `${registry}/hearth/${kind}:latest`, registry);
}

/** Any image from the dev registry, pulled and unpacked into `home` as the worker does. */
export async function pullUnpacked(home: string, ref: string, registry = testEnv().registry): Promise<PulledBase> {
  const client = new RegistryClient({ registry, insecure: true });
  const store = openContentStore(path.join(home, 'content'));
  const image = await pullImage({ store, client, ref });
  const layers = await ensureLayersUnpacked({ home, store, image });
  const { Env, Cmd, Entrypoint, WorkingDir, User } = image.config.config ?? {};
  return { reference: image.reference, digest: image.manifestDigest, layers, diffIds: image.layers.map((l) => l.diffId), imageConfig: { Env, Cmd, Entrypoint, WorkingDir, User } };
}

/**
 * A function's code as one more lower layer: `<home>/code/<name>/function/<file>`. A file is
 * its text, or `{ text, mode }` (e.g. 0o755 for an exec handler).
 */
export async function codeLayer(home: string, name: string, files: Record<string, string | { text: string; mode: number }>): Promise<string> {
  const layer = path.join(home, 'code', name);
  for (const [file, spec] of Object.entries(files)) {
    const { text, mode } = typeof spec === 'string' ? { text: spec, mode: 0o644 } : spec;
    const target = path.join(layer, 'function', file);
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.writeFile(target, text);
    await fs.chmod(target, mode); // writeFile's mode is filtered by the umask
  }
  return layer;
}

/** A node function layer: index.js plus the package.json that makes it an ES module. */
export function nodeCode(home: string, name: string, source: string): Promise<string> {
  return codeLayer(home, name, { 'index.js': source, 'package.json': '{"type":"module"}\n' });
}

/** A scratch HEARTH_HOME named after the test prefix (short, for the 107-byte socket path). */
export async function prefixedHome(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
}

/**
 * Running processes on the host in the instance's cgroup (any hierarchy; also one removed
 * already). Zombies do not count: a killed container's init waits as one until the host's
 * init reaps it, holding nothing but its pid.
 */
export async function processesOf(id: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name) || !(await isRunning(Number(name)))) continue;
    const cgroup = await fs.readFile(`/proc/${name}/cgroup`, 'utf8').catch(() => '');
    if (cgroup.includes(`/hearth/${id}\n`) || cgroup.includes(`/hearth/${id} (deleted)\n`)) found.push(Number(name));
  }
  return found;
}

/** The process exists and is not a zombie. */
export async function isRunning(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ')'
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== '' && state !== 'Z';
}

/** Everything under a test prefix that is still there: runc containers, mounts, folders, cgroups, processes. */
export async function leftoversWithPrefix(home: string, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const id of runcIds().filter((i) => i.startsWith(prefix))) found.push(`runc container ${id}`);
  for (const m of mountsMentioning(path.join(home, 'instances'))) found.push(`mount ${m}`);
  const instances = await fs.readdir(path.join(home, 'instances')).catch(() => [] as string[]);
  for (const id of instances) found.push(`folder instances/${id}`);
  for (const controller of ['memory', 'pids', 'cpu', 'unified']) {
    const groups = await fs.readdir(`/sys/fs/cgroup/${controller}/hearth`).catch(() => [] as string[]);
    for (const g of groups.filter((n) => n.startsWith(prefix))) found.push(`cgroup ${controller}/hearth/${g}`);
  }
  return found;
}

/** A GET of `p` as the worker would send it. */
export const get = (p: string, query = ''): SandboxRequest => ({ method: 'GET', path: p, query, headers: {}, body: Buffer.alloc(0) });

/** A text/plain POST of `body` to `p`. */
export const post = (p: string, body: string | Buffer, query = ''): SandboxRequest => ({
  method: 'POST',
  path: p,
  query,
  headers: { 'content-type': 'text/plain' },
  body: Buffer.from(body),
});

/** Awaits `promise` and asserts that it rejects with a HearthError of `code`. */
export async function rejectsWith(promise: Promise<unknown>, code: HearthError['code']): Promise<HearthError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isHearthError(err, code), `expected HearthError ${code}, got ${String(err)}`);
    return err as HearthError;
  }
  assert.fail(`expected HearthError ${code}, but it resolved`);
}

/** A runc sandbox logging to `<home>/logs/<id>.log`, remembered in `tracked` so `after` can stop it. */
export function trackedSandbox(tracked: RuncSandbox[], opts: Omit<SandboxOptions, 'logPath'> & { logPath?: string }): RuncSandbox {
  const s = createRuncSandbox({ logPath: path.join(opts.home, 'logs', `${opts.id}.log`), ...opts });
  tracked.push(s);
  return s;
}
