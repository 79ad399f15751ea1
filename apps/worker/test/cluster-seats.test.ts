// Seats across workers against a real Redis: the cap holds however many workers ask, a
// released seat is free again, and a dead worker's seats free up once its status is gone.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { workerStatusKey } from '@hearth/core';
import { deleteRedisPrefix, testEnv, uniquePrefix } from '../../../test/helpers/services.ts';
import { ClusterSeats } from '../src/pool/cluster-seats.ts';

const prefix = uniquePrefix('seats');
const redis = new Redis(testEnv().redisUrl, { maxRetriesPerRequest: 1 });
after(async () => {
  await deleteRedisPrefix(prefix);
  redis.disconnect();
});

const VERSION = 'fn@1:sha256:abc';
const alive = (worker: string) => redis.set(workerStatusKey(prefix, worker), '{}', 'EX', 60);

test('at most max seats are held across workers, however many ask at once; a released seat is free again', async () => {
  await Promise.all([alive('a'), alive('b')]);
  const a = new ClusterSeats(redis, prefix, 'a');
  const b = new ClusterSeats(redis, prefix, 'b');
  const asks = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).reserve(VERSION, `i${i}`, 3)));
  assert.equal(asks.filter(Boolean).length, 3);
  const holder = asks.findIndex(Boolean);
  await (holder % 2 ? a : b).release(VERSION, `i${holder}`);
  assert.equal(await b.reserve(VERSION, 'late', 3), true);
  assert.equal(await a.reserve(VERSION, 'later', 3), false);
  // Another version has seats of its own.
  assert.equal(await a.reserve('fn@2:sha256:def', 'v2', 1), true);
});

test("a dead worker's seats are free once its status has expired; until then they hold", async () => {
  const version = 'dead@1:sha256:0';
  await Promise.all([alive('gone'), alive('live')]);
  // No fresh-seat grace here: a seat counts only while its worker's status key exists.
  const gone = new ClusterSeats(redis, prefix, 'gone', 0);
  const live = new ClusterSeats(redis, prefix, 'live', 0);
  assert.equal(await gone.reserve(version, 'g1', 2), true);
  assert.equal(await gone.reserve(version, 'g2', 2), true);
  assert.equal(await live.reserve(version, 'l1', 2), false);
  // The worker is killed: its status key expires.
  await redis.del(workerStatusKey(prefix, 'gone'));
  assert.equal(await live.reserve(version, 'l1', 2), true);
  assert.deepEqual(Object.keys(await redis.hgetall(`${prefix}:seats:${version}`)), ['l1']);
});

test("a restarted worker drops the seats its earlier run left, and only its own", async () => {
  const version = 'restart@1:sha256:0';
  await Promise.all([alive('w1'), alive('w2')]);
  const before = new ClusterSeats(redis, prefix, 'w1');
  await before.reserve(version, 'old-1', 5);
  await before.reserve(version, 'old-2', 5);
  await new ClusterSeats(redis, prefix, 'w2').reserve(version, 'other', 5);
  assert.equal(await new ClusterSeats(redis, prefix, 'w1').releaseLeftovers(), 2);
  assert.deepEqual(Object.keys(await redis.hgetall(`${prefix}:seats:${version}`)), ['other']);
});
