/**
 * Helpers for tests that use the real Redis, Postgres and registry. `npm test` exports
 * REDIS_URL, DATABASE_URL, HEARTH_REGISTRY and HEARTH_REPO_ROOT; run alone, a test file
 * falls back to the default local stack. Everything a test creates carries a prefix from
 * uniquePrefix() and is removed with the matching helper at the end.
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import { openDatabase, runMigrations, type Database, type Db } from '@hearth/core/db';

export interface TestEnv {
  redisUrl: string;
  /** A superuser connection; createTestDatabase() makes databases through it. */
  databaseUrl: string;
  /** host:port of the registry (plain HTTP). */
  registry: string;
  repoRoot: string;
}

export function testEnv(env: NodeJS.ProcessEnv = process.env): TestEnv {
  return {
    redisUrl: env.REDIS_URL || 'redis://127.0.0.1:6379',
    databaseUrl: env.DATABASE_URL || 'postgres://hearth:hearth@127.0.0.1:5432/hearth',
    registry: env.HEARTH_REGISTRY || '127.0.0.1:5000',
    repoRoot: env.HEARTH_REPO_ROOT || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..'),
  };
}

const randomId = (length: number) => {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(crypto.randomBytes(length), (b) => alphabet[b % alphabet.length]).join('');
};

/** `test-<name>-<random6>`, lowercase: a prefix for containers, queues, repositories, databases. */
export function uniquePrefix(name: string): string {
  const clean = name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  return `test-${clean}-${randomId(6)}`;
}

// ---------------------------------------------------------------- Postgres

export interface TestDatabase {
  name: string;
  url: string;
  db: Db;
  /** The pool behind `db`, for raw SQL. */
  database: Database;
  /** Closes the pool and drops the database (also with connections still open). May be called twice. */
  drop(): Promise<void>;
}

async function withAdmin<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const quoteIdent = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** Creates `<prefix>_<random>` with every migration applied. Drop it with drop() at the end. */
export async function createTestDatabase(prefix: string, adminUrl = testEnv().databaseUrl): Promise<TestDatabase> {
  // Postgres folds and limits identifiers to 63 bytes.
  const name = `${prefix.toLowerCase().replace(/[^a-z0-9_]+/g, '_').slice(0, 52)}_${randomId(8)}`;
  await withAdmin(adminUrl, (client) => client.query(`CREATE DATABASE ${quoteIdent(name)}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = openDatabase(url.toString());
  let dropping: Promise<void> | undefined;
  const drop = () =>
    (dropping ??= (async () => {
      await database.close();
      await withAdmin(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
    })());
  try {
    await runMigrations(database.db);
  } catch (err) {
    await drop();
    throw err;
  }
  return { name, url: url.toString(), db: database.db, database, drop };
}

// ---------------------------------------------------------------- Redis

/** Deletes every key under a BullMQ prefix (`<prefix>:*`); returns how many. */
export async function deleteRedisPrefix(prefix: string, redisUrl = testEnv().redisUrl): Promise<number> {
  if (!prefix) throw new Error('deleteRedisPrefix: refusing an empty prefix');
  const client = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  client.on('error', () => {});
  await client.connect();
  let deleted = 0;
  try {
    const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}:*`;
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await client.del(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return deleted;
}

/** A BullMQ prefix for one test file, and the cleanup that removes its keys. */
export function redisPrefix(prefix: string, redisUrl = testEnv().redisUrl): { prefix: string; redisUrl: string; cleanup(): Promise<number> } {
  return { prefix, redisUrl, cleanup: () => deleteRedisPrefix(prefix, redisUrl) };
}

// ---------------------------------------------------------------- registry

const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

function registryHeaders(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const user = env.HEARTH_REGISTRY_USERNAME;
  const headers: Record<string, string> = { accept: MANIFEST_TYPES };
  if (user) headers.authorization = `Basic ${Buffer.from(`${user}:${env.HEARTH_REGISTRY_PASSWORD ?? ''}`).toString('base64')}`;
  return headers;
}

/** "127.0.0.1:5000/a/b:tag", "a/b@sha256:…" → repository and tag-or-digest. */
function splitRef(ref: string): { repository: string; reference: string } {
  let rest = ref;
  const first = rest.split('/')[0] ?? '';
  if (rest.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) rest = rest.slice(first.length + 1);
  const at = rest.indexOf('@');
  if (at >= 0) return { repository: rest.slice(0, at), reference: rest.slice(at + 1) };
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) return { repository: rest.slice(0, colon), reference: rest.slice(colon + 1) };
  return { repository: rest, reference: 'latest' };
}

/** Deletes one manifest (by tag or digest) and, for an index, the manifests it lists. Returns how many. */
async function deleteManifest(registry: string, repository: string, reference: string): Promise<number> {
  const base = `http://${registry}/v2/${repository}/manifests`;
  const res = await fetch(`${base}/${reference}`, { headers: registryHeaders() });
  if (res.status === 404) {
    await res.arrayBuffer();
    return 0;
  }
  if (!res.ok) throw new Error(`registry ${registry}: GET ${repository}:${reference} answered ${res.status}`);
  const body = Buffer.from(await res.arrayBuffer());
  const digest = res.headers.get('docker-content-digest') ?? `sha256:${crypto.createHash('sha256').update(body).digest('hex')}`;
  const del = await fetch(`${base}/${digest}`, { method: 'DELETE', headers: registryHeaders() });
  await del.arrayBuffer();
  if (del.status !== 202 && del.status !== 404) throw new Error(`registry ${registry}: DELETE ${repository}@${digest} answered ${del.status} (deletes enabled?)`);
  let count = del.status === 202 ? 1 : 0;
  const manifest = JSON.parse(body.toString('utf8')) as { manifests?: { digest: string }[] };
  for (const child of manifest.manifests ?? []) count += await deleteManifest(registry, repository, child.digest);
  return count;
}

/** Repositories in the catalog whose name starts with `repoPrefix`. */
async function listRepositories(registry: string, repoPrefix: string): Promise<string[]> {
  const repos: string[] = [];
  let next: string | undefined = `/v2/_catalog?n=1000`;
  while (next) {
    const res = await fetch(`http://${registry}${next}`, { headers: registryHeaders() });
    if (!res.ok) throw new Error(`registry ${registry}: GET /v2/_catalog answered ${res.status}`);
    const { repositories } = (await res.json()) as { repositories?: string[] };
    repos.push(...(repositories ?? []).filter((r) => r.startsWith(repoPrefix)));
    next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
  }
  return repos;
}

/**
 * Removes what a test pushed. Distribution cannot delete a repository, so this deletes
 * manifests by digest: those in `pushedRefs`, then every tag still listed in a repository
 * whose name starts with `repoPrefix` (blobs stay until the registry's garbage collection).
 * Refuses refs outside the prefix. Returns how many manifests it deleted.
 */
export async function cleanupRegistry(repoPrefix: string, pushedRefs: string[] = [], registry = testEnv().registry): Promise<number> {
  if (!repoPrefix) throw new Error('cleanupRegistry: refusing an empty repository prefix');
  let count = 0;
  for (const ref of pushedRefs) {
    const { repository, reference } = splitRef(ref);
    if (!repository.startsWith(repoPrefix)) throw new Error(`cleanupRegistry: ${ref} is not under ${repoPrefix}`);
    count += await deleteManifest(registry, repository, reference);
  }
  for (const repository of await listRepositories(registry, repoPrefix)) {
    const res = await fetch(`http://${registry}/v2/${repository}/tags/list`, { headers: registryHeaders() });
    const tags = res.ok ? (((await res.json()) as { tags?: string[] | null }).tags ?? []) : (await res.arrayBuffer(), []);
    for (const tag of tags) count += await deleteManifest(registry, repository, tag);
  }
  return count;
}
