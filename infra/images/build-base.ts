/**
 * Builds Hearth's base images from Debian packages and pushes them:
 * `<registry>/hearth/node:latest` and `<registry>/hearth/exec:latest`.
 *
 * Each image is also tagged `recipe-<hash>`, the hash of what it is made from (this recipe
 * and the bootstraps), so an unchanged image is not rebuilt and a changed bootstrap is.
 * Usage: tsx infra/images/build-base.ts [--registry HOST:PORT] [--force] [node|exec ...]
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isHearthError, loadConfig } from '@hearth/core';
import { pushRootfsImage, RegistryClient } from '@hearth/oci';
import { assembleBaseRootfs, baseImageConfig, type BaseKind } from './rootfs.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BOOTSTRAPS = path.resolve(HERE, '../../packages/runtime/bootstraps');
const KINDS: BaseKind[] = ['node', 'exec'];

async function recipeHash(kind: BaseKind): Promise<string> {
  const hash = crypto.createHash('sha256');
  for (const file of [path.join(HERE, 'rootfs.ts'), path.join(HERE, 'build-base.ts')]) hash.update(await fs.readFile(file));
  const dir = path.join(BOOTSTRAPS, kind);
  for (const name of (await fs.readdir(dir)).sort()) hash.update(name).update(await fs.readFile(path.join(dir, name)));
  hash.update(JSON.stringify(baseImageConfig(kind)));
  return hash.digest('hex').slice(0, 16);
}

async function tagExists(client: RegistryClient, repo: string, tag: string) {
  try {
    return await client.getManifest(repo, tag);
  } catch (err) {
    if (isHearthError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
}

export async function buildBaseImages(opts: { registry: string; home: string; force?: boolean; kinds?: BaseKind[]; log?: (l: string) => void }) {
  const log = opts.log ?? ((l: string) => console.log(l));
  const client = new RegistryClient({ registry: opts.registry, insecure: /^(localhost|127\.|\[::1\])/.test(opts.registry) });
  await client.ping();
  const refs: string[] = [];
  for (const kind of opts.kinds ?? KINDS) {
    const repo = `hearth/${kind}`;
    const recipe = `recipe-${await recipeHash(kind)}`;
    const existing = opts.force ? undefined : await tagExists(client, repo, recipe);
    if (existing) {
      // Make sure :latest names this recipe (it may point at an older one).
      const latest = await tagExists(client, repo, 'latest');
      if (latest?.digest !== existing.digest) await client.putManifest(repo, 'latest', existing.bytes, existing.mediaType);
      log(`${opts.registry}/${repo}:latest is up to date (${recipe})`);
      refs.push(`${opts.registry}/${repo}:latest@${existing.digest}`);
      continue;
    }
    const rootfs = path.join(opts.home, 'cache', 'base', `${kind}-${recipe}`);
    log(`assembling the ${kind} rootfs from Debian packages`);
    await assembleBaseRootfs(kind, rootfs, { cacheDir: path.join(opts.home, 'cache', 'debs') });
    const config = baseImageConfig(kind);
    const pushed = await pushRootfsImage({
      client,
      target: `${opts.registry}/${repo}:${recipe}`,
      rootfsDir: rootfs,
      config: { env: config.env, cmd: config.cmd, workingDir: config.workingDir, labels: { 'org.hearth.recipe': recipe } },
    });
    const manifest = await client.getManifest(repo, pushed.digest);
    await client.putManifest(repo, 'latest', manifest.bytes, manifest.mediaType);
    log(`pushed ${opts.registry}/${repo}:latest@${pushed.digest}`);
    refs.push(`${opts.registry}/${repo}:latest@${pushed.digest}`);
    // Older rootfs folders of this kind are no longer needed.
    const cacheDir = path.dirname(rootfs);
    for (const name of await fs.readdir(cacheDir)) {
      if (name.startsWith(`${kind}-recipe-`) && name !== path.basename(rootfs)) await fs.rm(path.join(cacheDir, name), { recursive: true, force: true });
    }
  }
  return refs;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    options: { registry: { type: 'string' }, force: { type: 'boolean', default: false } },
    allowPositionals: true,
  });
  const config = loadConfig();
  const kinds = positionals.length ? (positionals as BaseKind[]) : KINDS;
  for (const k of kinds) if (!KINDS.includes(k)) throw new Error(`unknown base image "${k}" (expected ${KINDS.join(' or ')})`);
  buildBaseImages({ registry: values.registry ?? config.registry, home: config.home, force: values.force, kinds }).catch((err: Error) => {
    console.error(`build-base: ${err.message}`);
    process.exit(1);
  });
}
