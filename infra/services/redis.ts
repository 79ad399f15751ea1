import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { clearStalePidFile, isLoopback, logTail, probePort, spawnDaemon, stopPid, waitUntil } from './daemon.ts';
import { once, type LocalService, type ServiceOptions } from './service.ts';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** PING over a fresh connection: 'ok', or why not. */
export async function pingRedis(url: string): Promise<'ok' | string> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1500,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG' ? 'ok' : 'no PONG';
  } catch (err) {
    return (err as Error).message;
  } finally {
    client.disconnect();
  }
}

/**
 * Reuses the Redis at REDIS_URL (default redis://127.0.0.1:6379) when it answers PING;
 * otherwise starts redis-server on that loopback port with its data and append-only file
 * in <home>/redis.
 */
export async function ensureRedis({ home, env, log }: ServiceOptions): Promise<LocalService> {
  const url = env.REDIS_URL || DEFAULT_REDIS_URL;
  const parsed = new URL(url);
  const host = parsed.hostname || '127.0.0.1';
  const port = Number(parsed.port || 6379);
  const reuse: LocalService = { name: 'redis', started: false, env: { REDIS_URL: url }, stop: async () => {} };

  const ping = await pingRedis(url);
  if (ping === 'ok') {
    log(`redis: reusing ${host}:${port}`);
    return reuse;
  }
  if ((await probePort(host, port)) === 'open') {
    throw new Error(`redis: something answers on ${host}:${port} but not as a usable Redis (${ping}); stop it or set REDIS_URL`);
  }
  if (!isLoopback(host)) throw new Error(`redis: cannot reach ${url} (connection refused); is REDIS_URL right?`);

  const dir = path.join(home, 'redis');
  fs.mkdirSync(dir, { recursive: true });
  const pidFile = path.join(dir, 'redis.pid');
  const logFile = path.join(dir, 'redis.log');
  await clearStalePidFile(pidFile, 'redis-server');
  const args = [
    '--bind', '127.0.0.1',
    '--port', String(port),
    '--dir', dir,
    '--appendonly', 'yes',
    '--appendfsync', 'everysec',
    '--daemonize', 'no',
    '--pidfile', pidFile,
    '--logfile', logFile,
    ...(parsed.password ? ['--requirepass', decodeURIComponent(parsed.password)] : []),
  ];
  const daemon = spawnDaemon('redis-server', args, { logFile });
  const stop = once(() => stopPid(daemon.pid, 10_000));
  try {
    await waitUntil(`redis on ${host}:${port}`, 10_000, async () => (await pingRedis(url)) === 'ok', () =>
      daemon.hasExited() ? `redis-server exited; ${logFile} ends with:\n${logTail(logFile)}` : undefined,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  log(`redis: started on ${host}:${port} (pid ${daemon.pid}, data in ${dir})`);
  return { ...reuse, started: true, pid: daemon.pid, stop };
}
