import path from 'node:path';
import { Worker } from 'bullmq';
import { QUEUES, loadConfig, redisConnection } from '@hearth/core';
import { openDatabase } from '@hearth/core/db';
import { openContentStore } from '@hearth/oci';
import { cleanupInstances } from '@hearth/runtime';
import { ImageCache } from './image-cache.ts';
import { InstancePool } from './instance-pool.ts';
import { InvocationLog } from './invocation-log.ts';
import { createInvokeProcessor } from './invoke-processor.ts';
import { startTriggerPlane } from './trigger-plane.ts';

const config = loadConfig();
const logError = (err: unknown) => console.error('[worker]', (err as Error)?.message ?? err);

// Whatever a previous worker with this prefix left (it was killed): containers, mounts, folders.
await cleanupInstances(config.home, config.instancePrefix);

const database = openDatabase(config.databaseUrl);
const pool = new InstancePool(logError);
const invocations = new InvocationLog(database.db, logError);
const processor = createInvokeProcessor({
  config,
  images: new ImageCache(config, openContentStore(path.join(config.home, 'content'))),
  pool,
  invocations,
});

const worker = new Worker(QUEUES.invoke, processor, {
  connection: redisConnection(config.redisUrl),
  prefix: config.queuePrefix,
  concurrency: config.workerConcurrency,
});
worker.on('error', logError);
worker.on('failed', (job, err) => logError(`job ${job?.id} failed: ${err.message}`));
await worker.waitUntilReady();
const triggers = await startTriggerPlane({ config, db: database.db, processInvoke: processor, onError: logError });
console.log(`worker ready (queue ${config.queuePrefix}:${QUEUES.invoke}, concurrency ${config.workerConcurrency})`);

let stopping: Promise<void> | undefined;
function shutdown(signal: string) {
  stopping ??= (async () => {
    console.log(`worker: ${signal}, finishing calls in flight and releasing instances`);
    await Promise.all([worker.close(), triggers.close()]);
    await pool.close();
    await invocations.flush();
    await database.close();
    console.log('worker: stopped');
    process.exit(0);
  })();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
