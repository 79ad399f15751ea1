import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';
import { RegistryClient, MEDIA_TYPES } from '@hearth/oci';
import { cleanupRegistry, createTestDatabase, deleteRedisPrefix, testEnv, uniquePrefix } from '../helpers/services.ts';

const env = testEnv();
const prefix = uniquePrefix('helpers');

async function databaseExists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: env.databaseUrl });
  await client.connect();
  try {
    return ((await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount ?? 0) > 0;
  } finally {
    await client.end();
  }
}

test('uniquePrefix is lowercase, test-<name>-<6 random>', () => {
  const a = uniquePrefix('My Suite');
  assert.match(a, /^test-my-suite-[a-z0-9]{6}$/);
  assert.notEqual(a, uniquePrefix('My Suite'));
});

test('createTestDatabase makes a migrated database of its own, and drop() removes it', async () => {
  const t = await createTestDatabase(prefix.replaceAll('-', '_'));
  after(() => t.drop());
  assert.ok(t.name.startsWith(prefix.replaceAll('-', '_')));
  assert.ok(await databaseExists(t.name));
  const { rows } = await t.database.pool.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'functions'");
  assert.deepEqual(rows, [{ n: 1 }], 'migrations should have created the functions table');
  await t.drop();
  await t.drop();
  assert.equal(await databaseExists(t.name), false);
});

test('deleteRedisPrefix deletes the keys under <prefix>: and nothing else', async () => {
  const redis = new Redis(env.redisUrl);
  after(async () => {
    await redis.del(`${prefix}x:kept`, `${prefix}:a`, `${prefix}:b:c`);
    redis.disconnect();
  });
  await redis.set(`${prefix}:a`, '1');
  await redis.hset(`${prefix}:b:c`, 'f', '1');
  await redis.set(`${prefix}x:kept`, '1');
  assert.equal(await deleteRedisPrefix(prefix, env.redisUrl), 2);
  assert.equal(await redis.exists(`${prefix}:a`, `${prefix}:b:c`), 0);
  assert.equal(await redis.get(`${prefix}x:kept`), '1');
  await assert.rejects(deleteRedisPrefix(''), /empty prefix/);
});

test('cleanupRegistry deletes the manifests pushed under a prefix, tagged or not, and refuses others', async () => {
  const client = new RegistryClient({ registry: env.registry, insecure: true });
  const repo = `test/${prefix}/img`;
  const push = async (note: string, tag: string) => {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Labels: { note } } }));
    const configDigest = `sha256:${crypto.createHash('sha256').update(config).digest('hex')}`;
    await client.uploadBlob(repo, configDigest, config);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: configDigest, size: config.length },
      layers: [],
    }));
    return client.putManifest(repo, tag, manifest, MEDIA_TYPES.ociManifest);
  };
  const tagged = await push('tagged', '1');
  const untagged = await push('untagged', 'tmp');
  after(() => cleanupRegistry(`test/${prefix}`, [`${env.registry}/${repo}@${untagged}`]));

  // Untag the second one by pointing the tag elsewhere: only its digest can find it now.
  await push('tagged', 'tmp');
  const deleted = await cleanupRegistry(`test/${prefix}`, [`${env.registry}/${repo}@${untagged}`]);
  assert.equal(deleted, 2);
  for (const ref of [tagged, untagged, '1', 'tmp']) {
    const res = await fetch(`http://${env.registry}/v2/${repo}/manifests/${ref}`, { headers: { accept: MEDIA_TYPES.ociManifest } });
    assert.equal(res.status, 404, `${ref} should be gone`);
    await res.arrayBuffer();
  }
  await assert.rejects(cleanupRegistry(`test/${prefix}`, [`${env.registry}/fn/other@${untagged}`]), /is not under test\//);
});
