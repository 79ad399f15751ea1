import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { startServices, type Services } from '../../infra/services/index.ts';
import { isAlive, probePort } from '../../infra/services/daemon.ts';
import { testEnv, uniquePrefix } from '../helpers/services.ts';

const prefix = uniquePrefix('services');
const homes: string[] = [];
const running: Services[] = [];
const quiet = () => {};

after(async () => {
  for (const s of running) await s.stop();
  for (const home of homes) await fs.rm(home, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function tempHome(): Promise<string> {
  const home = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
  homes.push(home);
  return home;
}

async function start(home: string, env: NodeJS.ProcessEnv): Promise<Services> {
  const services = await startServices({ home, env, log: quiet });
  running.push(services);
  return services;
}

const byName = (s: Services) => Object.fromEntries(s.services.map((x) => [x.name, x]));

async function redisGet(url: string, key: string): Promise<string | null> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  try {
    return await client.get(key);
  } finally {
    client.disconnect();
  }
}

async function sql<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

test('startServices runs Redis, Postgres and the registry on loopback, reuses them, stops them, and keeps their data', async () => {
  const home = await tempHome();
  const [redisPort, pgPort, registryPort] = [await freePort(), await freePort(), await freePort()];
  const env = {
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    DATABASE_URL: `postgres://hearth:hearth@127.0.0.1:${pgPort}/hearth`,
    HEARTH_REGISTRY: `127.0.0.1:${registryPort}`,
  };

  const first = await start(home, env);
  assert.deepEqual(first.env, { HEARTH_HOME: home, ...env });
  const started = byName(first);
  for (const name of ['redis', 'postgres', 'registry']) {
    assert.equal(started[name]?.started, true, `${name} should be started`);
    assert.ok(started[name]?.pid && isAlive(started[name].pid), `${name} should have a live pid`);
  }
  const pids = first.services.map((s) => s.pid!);

  // Each answers with its own protocol, as the apps will use it.
  const redis = new Redis(env.REDIS_URL, { lazyConnect: true });
  await redis.connect();
  assert.equal(await redis.ping(), 'PONG');
  await redis.set(`${prefix}:kept`, 'across restarts');
  redis.disconnect();
  assert.deepEqual(await sql(env.DATABASE_URL, 'SELECT 1 AS one'), [{ one: 1 }]);
  await sql(env.DATABASE_URL, "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('across restarts')");
  const v2 = await fetch(`http://${env.HEARTH_REGISTRY}/v2/`);
  assert.equal(v2.status, 200);
  await v2.arrayBuffer();

  // Data lives under HEARTH_HOME.
  for (const dir of ['redis/appendonlydir', 'postgres/data/PG_VERSION', 'registry/config.yml']) {
    await fs.access(path.join(home, dir));
  }

  // A second call finds them answering and reuses them; its stop() leaves them alone.
  const second = await start(home, env);
  assert.deepEqual(second.env, first.env);
  assert.ok(second.services.every((s) => !s.started && s.pid === undefined));
  await second.stop();
  assert.ok(pids.every(isAlive), 'stop() of a reusing call must not stop anything');

  // stop() of the first call stops all three: no process left, ports closed.
  await first.stop();
  for (const pid of pids) assert.equal(isAlive(pid), false, `pid ${pid} should be gone`);
  for (const port of [redisPort, pgPort, registryPort]) assert.equal(await probePort('127.0.0.1', port), 'closed');
  await first.stop(); // twice is fine

  // A pid file left by a killed run does not get in the way.
  await fs.writeFile(path.join(home, 'registry/registry.pid'), '4000000\n');

  // Started again on the same home, the Redis key (append-only file) and the table are still there.
  const third = await start(home, env);
  assert.ok(third.services.every((s) => s.started));
  assert.equal(await redisGet(env.REDIS_URL, `${prefix}:kept`), 'across restarts');
  assert.deepEqual(await sql(env.DATABASE_URL, 'SELECT note FROM kept'), [{ note: 'across restarts' }]);
  const thirdPids = third.services.map((s) => s.pid!);
  await third.stop();
  for (const pid of thirdPids) assert.equal(isAlive(pid), false, `pid ${pid} should be gone`);
});

test('startServices reuses the services already answering at the configured addresses and leaves them running', async () => {
  const shared = testEnv();
  const home = await tempHome();
  const env = { REDIS_URL: shared.redisUrl, DATABASE_URL: shared.databaseUrl, HEARTH_REGISTRY: shared.registry };
  const services = await start(home, env);
  assert.ok(services.services.every((s) => !s.started), 'nothing should be started');
  assert.deepEqual(services.env, { HEARTH_HOME: home, ...env });
  await services.stop();
  const redis = new Redis(shared.redisUrl, { lazyConnect: true });
  await redis.connect();
  assert.equal(await redis.ping(), 'PONG');
  redis.disconnect();
  assert.deepEqual(await sql(shared.databaseUrl, 'SELECT 1 AS one'), [{ one: 1 }]);
  assert.equal((await fetch(`http://${shared.registry}/v2/`)).status, 200);
  // Nothing was written to the home: no server of ours ran.
  assert.deepEqual(await fs.readdir(home), []);
});

test('startServices fails naming the port when something else holds it, and stops what it had started', async () => {
  // A TCP server that answers every connection with something that is not Redis.
  const sockets = new Set<net.Socket>();
  const impostor = net.createServer((socket) => {
    sockets.add(socket.on('error', () => {}));
    socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
  });
  await new Promise((resolve) => impostor.listen(0, '127.0.0.1', () => resolve(undefined)));
  after(() => {
    for (const socket of sockets) socket.destroy();
    impostor.close();
  });
  const impostorPort = (impostor.address() as net.AddressInfo).port;
  const registryPort = await freePort();
  const env = {
    REDIS_URL: `redis://127.0.0.1:${impostorPort}`,
    DATABASE_URL: testEnv().databaseUrl,
    HEARTH_REGISTRY: `127.0.0.1:${registryPort}`,
  };
  await assert.rejects(startServices({ home: await tempHome(), env, log: quiet }), (err: Error) => {
    assert.match(err.message, new RegExp(`redis: something answers on 127\\.0\\.0\\.1:${impostorPort} but not as a usable Redis`));
    return true;
  });
  // The registry it had started for this call is stopped again.
  assert.equal(await probePort('127.0.0.1', registryPort), 'closed');
});
