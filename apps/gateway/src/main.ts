import type { ServerOptions } from 'node:http';
import { serve } from '@hono/node-server';
import { loadConfig, redisConnection } from '@hearth/core';
import { openDatabase } from '@hearth/core/db';
import { setupTelemetry, shutdownTelemetry } from '@hearth/core/telemetry';
import { createApp } from './app.ts';
import { FunctionStore } from './function-store.ts';
import { Invoker } from './invoker.ts';
import { LogReader } from './log-reader.ts';
import { CallStore } from './call-store.ts';
import { JobQueues } from './job-queues.ts';
import { ScaleStore } from './scale-store.ts';
import { WorkerDirectory } from './worker-directory.ts';
import { WarmRouter } from './warm-router.ts';
import { TraceStore } from './trace-store.ts';
import { openAccess } from './access.ts';

const config = loadConfig();
const database = openDatabase(config.databaseUrl);
setupTelemetry({
  service: 'hearth-gateway',
  db: database.db,
  ...(config.otlpEndpoint ? { otlpEndpoint: config.otlpEndpoint } : {}),
  onError: (err) => console.error('[gateway]', (err as Error).message),
});
const invoker = new Invoker(redisConnection(config.redisUrl), config.queuePrefix);
await invoker.ready();

const jobs = new JobQueues(redisConnection(config.redisUrl), config.queuePrefix);
const access = openAccess(config, database.db);
// Before listening: a CLI started as soon as the gateway answers finds the local admin key.
await access.adminKey.catch(() => undefined);
const workers = new WorkerDirectory(redisConnection(config.redisUrl), config.queuePrefix);
const app = createApp({
  config,
  functions: new FunctionStore(database.db),
  invoker,
  logs: new LogReader(config.home),
  calls: new CallStore(database.db),
  jobs,
  traces: new TraceStore(database.db),
  scale: new ScaleStore(database.db),
  workers,
  router: new WarmRouter(workers),
}, access);
const server = serve({ fetch: app.fetch, hostname: config.gatewayHost, port: config.gatewayPort, serverOptions: httpServerOptions(process.env) }, (info) => {
  console.log(`gateway listening on http://${info.address}:${info.port}`);
});

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`gateway: ${signal}, closing`);
  server.close();
  await Promise.all([invoker.close(), jobs.close()]);
  workers.close();
  // The last calls' spans go out before the pool they are written with closes.
  await shutdownTelemetry();
  await database.close();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

/**
 * Limits on what a client may make the node server wait for or hold, so a slow or hostile
 * client cannot keep a connection forever (slowloris) or send endless headers.
 * HEARTH_HEADERS_TIMEOUT_MS (10 s): all headers must arrive within it, else 408 and close.
 * HEARTH_REQUEST_TIMEOUT_MS (60 s): the whole request, body included; the response may take longer.
 * HEARTH_MAX_HEADER_BYTES (16 KiB): larger headers get 431.
 * TODO(lead): move these into HearthConfig (packages/core/src/config.ts).
 */
function httpServerOptions(env: NodeJS.ProcessEnv): ServerOptions {
  const ms = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive whole number, got ${JSON.stringify(raw)}`);
    return n;
  };
  const headersTimeout = ms('HEARTH_HEADERS_TIMEOUT_MS', 10_000);
  const requestTimeout = ms('HEARTH_REQUEST_TIMEOUT_MS', 60_000);
  const maxHeaderSize = ms('HEARTH_MAX_HEADER_BYTES', 16 * 1024);
  if (headersTimeout > requestTimeout) {
    throw new Error(`HEARTH_HEADERS_TIMEOUT_MS (${headersTimeout}) must not be larger than HEARTH_REQUEST_TIMEOUT_MS (${requestTimeout})`);
  }
  return {
    headersTimeout,
    requestTimeout,
    maxHeaderSize,
    // Node checks the two timeouts only this often (default 30 s, which would let a slow
    // client stay that much longer than the timeout says).
    connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(headersTimeout / 4))),
  };
}
