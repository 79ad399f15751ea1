/**
 * Hearth's base images, assembled distroless-style from Debian packages: `apt-get download`
 * the package closure, unpack each .deb with `dpkg-deb` (no maintainer scripts), add the
 * bootstrap and a few files in /etc. No shell in the node image; busybox only in exec.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HearthError } from '@hearth/core';

const run = promisify(execFile);

export type BaseKind = 'node' | 'exec';

const RUNTIME_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../packages/runtime/bootstraps');

/** Packages whose Depends closure makes up each image. */
const ROOTS: Record<BaseKind, string[]> = {
  node: ['nodejs'],
  exec: ['busybox-static'],
};

/**
 * Data-only packages, taken without their Depends: ca-certificates' (openssl, debconf) only
 * serve its maintainer script, and the CA bundle is concatenated here instead.
 */
const DATA: Record<BaseKind, string[]> = {
  node: ['ca-certificates'],
  exec: [],
};

/** Closure members a runtime does not need (npm and node-gyp pull python3 in, node does not). */
const SKIP = new Set(['python3', 'nodejs-doc']);

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The OCI image config each base image carries; function images add HEARTH_HANDLER. */
export function baseImageConfig(kind: BaseKind): { env: string[]; cmd: string[]; workingDir: string } {
  const env = [PATH_ENV, 'HEARTH_SOCKET=/run/hearth/invoke.sock'];
  if (kind === 'node') {
    return { env: [...env, 'NODE_ENV=production'], cmd: ['/usr/bin/node', '/opt/hearth/bootstrap.mjs'], workingDir: '/function' };
  }
  return { env, cmd: ['/opt/hearth/hearth-exec'], workingDir: '/function' };
}

interface Pkg { name: string; version: string }

/** Debian archive versions only: the host may carry other repos (e.g. nodesource's nodejs 20). */
async function debianVersions(names: string[]): Promise<Map<string, string>> {
  const { stdout } = await run('apt-cache', ['madison', ...names], { maxBuffer: 16 << 20 });
  const best = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const [name, version, source] = line.split('|').map((s) => s.trim());
    if (!name || !version || !source || best.has(name)) continue;
    if (!/(deb|security)\.debian\.org/.test(source) || !/\bPackages$/.test(source)) continue;
    best.set(name, version); // madison lists the newest version first
  }
  return best;
}

async function pinVersions(names: string[]): Promise<Pkg[]> {
  if (names.length === 0) return [];
  const versions = await debianVersions(names);
  return names.map((name) => {
    const version = versions.get(name);
    if (!version) throw new HearthError('NOT_FOUND', `no Debian archive version of ${name} in apt's lists; run apt-get update`);
    return { name, version };
  });
}

/** The Depends/Pre-Depends closure of `roots`, each at its newest Debian archive version. */
async function resolveClosure(roots: string[]): Promise<Pkg[]> {
  const pinned = (await pinVersions(roots)).map((p) => `${p.name}=${p.version}`);
  const { stdout } = await run(
    'apt-cache',
    ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', ...pinned],
    { maxBuffer: 16 << 20 },
  );
  // Unindented lines are the closure; `<virtual>` names are listed with their providers,
  // which appear as packages of their own.
  const names = new Set<string>();
  for (const line of stdout.split('\n')) {
    if (!line || line.startsWith(' ') || line.startsWith('<')) continue;
    const name = line.trim().replace(/:any$/, '');
    if (!SKIP.has(name)) names.add(name);
  }
  return pinVersions([...names].sort());
}

/** apt-get download into cacheDir, skipping .debs already there. Returns the .deb paths. */
async function downloadDebs(pkgs: Pkg[], cacheDir: string): Promise<string[]> {
  await fs.mkdir(cacheDir, { recursive: true });
  const files = await fs.readdir(cacheDir);
  const find = (p: Pkg) => files.find((f) => f.startsWith(`${p.name}_${p.version.replace(':', '%3a')}_`) && f.endsWith('.deb'));
  const missing = pkgs.filter((p) => !find(p));
  if (missing.length > 0) {
    try {
      await run('apt-get', ['download', ...missing.map((p) => `${p.name}=${p.version}`)], { cwd: cacheDir, maxBuffer: 16 << 20 });
    } catch (err) {
      throw new HearthError('UNAVAILABLE', `apt-get download failed: ${(err as { stderr?: string }).stderr?.trim() ?? err}`, { cause: err });
    }
    files.splice(0, files.length, ...(await fs.readdir(cacheDir)));
  }
  return pkgs.map((p) => {
    const f = find(p);
    if (!f) throw new HearthError('NOT_FOUND', `apt-get download did not produce ${p.name}_${p.version}`);
    return path.join(cacheDir, f);
  });
}

/** dpkg-deb --fsys-tarfile | tar -x, keeping the usr-merge symlinks (/lib -> usr/lib ...). */
function extractDeb(deb: string, dest: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const dpkg = spawn('dpkg-deb', ['--fsys-tarfile', deb], { stdio: ['ignore', 'pipe', 'pipe'] });
    const tar = spawn('tar', ['-x', '--keep-directory-symlink', '--no-same-owner', '-C', dest], { stdio: ['pipe', 'ignore', 'pipe'] });
    dpkg.stdout.pipe(tar.stdin);
    let errors = '';
    dpkg.stderr.on('data', (d: Buffer) => (errors += d));
    tar.stderr.on('data', (d: Buffer) => (errors += d));
    let pending = 2;
    let failed = false;
    const done = (code: number | null) => {
      if (code !== 0) failed = true;
      if (--pending === 0) failed ? reject(new HearthError('INTERNAL', `cannot unpack ${path.basename(deb)}: ${errors.trim()}`)) : resolve();
    };
    dpkg.on('close', done);
    tar.on('close', done);
    dpkg.on('error', reject);
    tar.on('error', reject);
  });
}

const ETC_FILES: Record<string, string> = {
  'etc/passwd': 'root:x:0:0:root:/root:/sbin/nologin\nhearth:x:1000:1000:hearth:/home/hearth:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n',
  'etc/group': 'root:x:0:\nhearth:x:1000:\nnogroup:x:65534:\n',
  'etc/nsswitch.conf': 'passwd: files\ngroup: files\nhosts: files\n',
  // The sandbox has loopback only; this keeps "localhost" resolvable without DNS.
  'etc/hosts': '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n',
};

async function addCommonFiles(root: string): Promise<void> {
  for (const [rel, text] of Object.entries(ETC_FILES)) {
    await fs.mkdir(path.join(root, path.dirname(rel)), { recursive: true });
    await fs.writeFile(path.join(root, rel), text, { mode: 0o644 });
  }
  // Mount points exist in the image so runc need not create them in each upper dir.
  for (const dir of ['proc', 'sys', 'dev', 'run/hearth', 'function', 'root', 'home/hearth', 'opt/hearth']) {
    await fs.mkdir(path.join(root, dir), { recursive: true });
  }
  await fs.mkdir(path.join(root, 'tmp'), { recursive: true });
  await fs.chmod(path.join(root, 'tmp'), 0o1777);
  await fs.chown(path.join(root, 'home/hearth'), 1000, 1000);
  // Manuals, translations, lintian overrides and iconv modules are dead weight at run time
  // (node does not use iconv); copyright files stay.
  for (const dir of ['usr/share/man', 'usr/share/info', 'usr/share/lintian', 'usr/share/locale', 'usr/lib/x86_64-linux-gnu/gconv']) {
    await fs.rm(path.join(root, dir), { recursive: true, force: true });
  }
}

/** What update-ca-certificates would generate, without running a maintainer script. */
async function addCaBundle(root: string): Promise<void> {
  const dir = path.join(root, 'usr/share/ca-certificates/mozilla');
  const names = (await fs.readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.crt')).sort();
  if (names.length === 0) return;
  const pems = await Promise.all(names.map((n) => fs.readFile(path.join(dir, n), 'utf8')));
  await fs.mkdir(path.join(root, 'etc/ssl/certs'), { recursive: true });
  await fs.writeFile(path.join(root, 'etc/ssl/certs/ca-certificates.crt'), pems.map((p) => p.trimEnd() + '\n').join(''));
}

/** `busybox --install -s`, done from the host with the image's own (static) busybox. */
async function addBusyboxLinks(root: string): Promise<void> {
  const busybox = path.join(root, 'usr/bin/busybox');
  const { stdout } = await run(busybox, ['--list-full']);
  for (const rel of stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
    const target = path.join(root, rel);
    if (path.relative(root, target).startsWith('..')) continue;
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.symlink('/bin/busybox', target).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
}

async function compileExecBootstrap(dest: string): Promise<void> {
  const src = path.join(RUNTIME_DIR, 'exec/hearth-exec.c');
  try {
    await run('gcc', ['-static', '-O2', '-Wall', '-Wextra', '-o', dest, src]);
    await run('strip', [dest]);
  } catch (err) {
    throw new HearthError('INTERNAL', `cannot compile ${src}: ${(err as { stderr?: string }).stderr?.trim() ?? err}`, { cause: err });
  }
}

/**
 * Assembles the base rootfs of `kind` into `outDir` (replaced if present; built beside it
 * and renamed, so a crash never leaves a half-built folder under that name).
 * .debs are cached in `opts.cacheDir` (default: `<outDir>/../debs`).
 */
export async function assembleBaseRootfs(kind: BaseKind, outDir: string, opts: { cacheDir?: string } = {}): Promise<void> {
  const cacheDir = opts.cacheDir ?? path.join(path.dirname(outDir), 'debs');
  const pkgs = [...(await resolveClosure(ROOTS[kind])), ...(await pinVersions(DATA[kind]))];
  const debs = await downloadDebs(pkgs, cacheDir);

  const tmp = `${outDir}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  // Debian 12 is usr-merged: packages still ship /lib, /bin, so make those links first.
  for (const dir of ['usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64']) await fs.mkdir(path.join(tmp, dir), { recursive: true });
  for (const link of ['bin', 'sbin', 'lib', 'lib64']) await fs.symlink(`usr/${link}`, path.join(tmp, link));
  try {
    for (const deb of debs) await extractDeb(deb, tmp);
    await addCommonFiles(tmp);
    if (kind === 'node') {
      await addCaBundle(tmp);
      await fs.copyFile(path.join(RUNTIME_DIR, 'node/bootstrap.mjs'), path.join(tmp, 'opt/hearth/bootstrap.mjs'));
      // Handlers are ES modules (`export default`), also as .js; a function's own
      // package.json replaces this one.
      await fs.writeFile(path.join(tmp, 'function/package.json'), '{ "type": "module" }\n');
      await fs.access(path.join(tmp, 'usr/bin/node'));
    } else {
      await addBusyboxLinks(tmp);
      await compileExecBootstrap(path.join(tmp, 'opt/hearth/hearth-exec'));
    }
    await fs.rm(outDir, { recursive: true, force: true });
    await fs.rename(tmp, outDir);
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
