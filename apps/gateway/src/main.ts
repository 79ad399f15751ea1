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
import { httpServerOptions } from './server-options.ts';

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
const server = serve({ fetch: app.fetch, hostname: config.gatewayHost, port: config.gatewayPort, serverOptions: httpServerOptions(config) }, (info) => {
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
