import { serve } from '@hono/node-server';
import { loadConfig, redisConnection } from '@hearth/core';
import { openDatabase } from '@hearth/core/db';
import { createApp } from './app.ts';
import { FunctionStore } from './function-store.ts';
import { Invoker } from './invoker.ts';
import { LogReader } from './log-reader.ts';
import { CallStore } from './call-store.ts';
import { JobQueues } from './job-queues.ts';

const config = loadConfig();
const database = openDatabase(config.databaseUrl);
const invoker = new Invoker(redisConnection(config.redisUrl), config.queuePrefix);
await invoker.ready();

const jobs = new JobQueues(redisConnection(config.redisUrl), config.queuePrefix);
const app = createApp({ config, functions: new FunctionStore(database.db), invoker, logs: new LogReader(config.home), calls: new CallStore(database.db), jobs });
const server = serve({ fetch: app.fetch, hostname: config.gatewayHost, port: config.gatewayPort }, (info) => {
  console.log(`gateway listening on http://${info.address}:${info.port}`);
});

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`gateway: ${signal}, closing`);
  server.close();
  await Promise.all([invoker.close(), jobs.close()]);
  await database.close();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
