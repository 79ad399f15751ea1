import fs from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { QUEUES, loadConfig, redisConnection } from '@hearth/core';
import { openDatabase } from '@hearth/core/db';
import { setupTelemetry, shutdownTelemetry } from '@hearth/core/telemetry';
import { openContentStore } from '@hearth/oci';
import { cleanupInstances, cleanupVmInstances } from '@hearth/runtime';
import { FunctionCatalog } from './function-catalog.ts';
import { ImageCache } from './image-cache.ts';
import { InvocationLog } from './invocation-log.ts';
import { createInvokeProcessor } from './invoke-processor.ts';
import { ClusterSeats } from './pool/cluster-seats.ts';
import { WorkerMetrics } from './metrics.ts';
import { InstancePool } from './pool/instance-pool.ts';
import { createInstanceStarter } from './pool/instance-starter.ts';
import { MemoryBudget } from './pool/memory-budget.ts';
import { PoolReconciler } from './pool/pool-reconciler.ts';
import { ScaleBook } from './pool/scale-book.ts';
import { StemCellPool, stemCellLogPath } from './pool/stem-cells.ts';
import { readSecrets } from './secret-reader.ts';
import { StatusPublisher } from './status-publisher.ts';
import { OwnQueue } from './own-queue.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTriggerPlane } from './trigger-plane.ts';
import { startSpanRetention } from './span-retention.ts';
import { syncLockOptions } from './lock-settings.ts';

const config = loadConfig();
const logError = (err: unknown) => console.error('[worker]', (err as Error)?.message ?? err);

// Whatever a previous worker with this prefix left (it was killed): containers, mounts, folders.
await cleanupInstances(config.home, config.instancePrefix);
await cleanupVmInstances(config.home, config.instancePrefix);

const database = openDatabase(config.databaseUrl);
setupTelemetry({ service: 'hearth-worker', db: database.db, ...(config.otlpEndpoint ? { otlpEndpoint: config.otlpEndpoint } : {}), onError: logError });
const redis = new Redis(redisConnection(config.redisUrl));
redis.on('error', logError);
const images = new ImageCache(config, openContentStore(path.join(config.home, 'content')));
const budget = new MemoryBudget(config.workerMemoryMb);
const metrics = new WorkerMetrics();
let status: StatusPublisher | undefined;
const changed = () => status?.changed();

const stemCells = new StemCellPool({
  config,
  images,
  budget,
  onError: logError,
  changed,
  resolveBase: async (runtime) => ({
    imageRef: `${config.registry}/hearth/${runtime}`,
    digest: await images.resolveTag(config.registry, `hearth/${runtime}`, 'latest'),
  }),
});
// maxInstances and minWarm count every worker's instances (seats in Redis); a restart's leftovers go first.
const seats = new ClusterSeats(redis, config.queuePrefix, config.workerId);
await seats.releaseLeftovers();
const pool = new InstancePool({
  budget,
  seats,
  idPrefix: config.instancePrefix,
  pauseAfterMs: config.pauseAfterMs,
  start: createInstanceStarter({ config, images, stemCells, readSecrets: (name) => readSecrets(database.db, name) }),
  evictables: () => stemCells.evictables(),
  onError: logError,
  events: {
    started: (instance, ms) => metrics.instanceStarted(instance.functionName, instance.startKind, ms),
    // The function's logs keep their link to the file; the stem cells' folder lets go of it.
    stopped: (instance) => {
      if (instance.startKind === 'stemcell') void fs.rm(stemCellLogPath(config, instance.id), { force: true });
    },
    changed,
  },
});
status = new StatusPublisher({
  config,
  redis,
  metrics,
  onError: logError,
  status: () => ({ memory: { usedMb: budget.usedMb, totalMb: budget.totalMb }, instances: pool.snapshot(), stemCells: stemCells.counts() }),
});

const scale = new ScaleBook(database.db, config.idleTtlSec);
const invocations = new InvocationLog(database.db, logError);
const processor = createInvokeProcessor({ pool, scale, invocations, metrics, logMaxBytes: config.logMaxMb * 1024 * 1024 });

const worker = new Worker(QUEUES.invoke, processor, {
  connection: redisConnection(config.redisUrl),
  prefix: config.queuePrefix,
  concurrency: config.workerConcurrency,
  ...syncLockOptions(),
});
worker.on('error', logError);
worker.on('failed', (job, err) => logError(`job ${job?.id} failed: ${err.message}`));
await worker.waitUntilReady();
const ownQueue = new OwnQueue({ config, redis, connection: redisConnection(config.redisUrl), processor, onError: logError });
await ownQueue.start();
const triggers = await startTriggerPlane({ config, db: database.db, processInvoke: processor, onError: logError });
// Published before minWarm instances start: other workers count this one's seats as live from then on.
status.start();
const reconciler = new PoolReconciler({ config, catalog: new FunctionCatalog(database.db), scale, pool, onError: logError });
await reconciler.start();
stemCells.start();
const stopSpanRetention = startSpanRetention(database.db, config.traceRetentionDays, logError);
console.log(`worker ready: ${config.workerId} (queue ${config.queuePrefix}:${QUEUES.invoke}, concurrency ${config.workerConcurrency}, memory ${config.workerMemoryMb} MB)`);

let stopping: Promise<void> | undefined;
function shutdown(signal: string) {
  stopping ??= (async () => {
    console.log(`worker: ${signal}, finishing calls in flight and releasing instances`);
    // Off the gateway's routing first (its view is at most 0.5 s old), then take what was
    // already routed here; the calls in flight finish on the instances they hold.
    await status?.close();
    stopSpanRetention();
    await sleep(1_000);
    await Promise.all([ownQueue.drain(), worker.close(), triggers.close(), reconciler.close()]);
    await Promise.all([pool.close(), stemCells.close()]);
    await invocations.flush();
    // The last calls' spans go out before the pool they are written with closes.
    await shutdownTelemetry();
    await database.close();
    redis.disconnect();
    console.log('worker: stopped');
    process.exit(0);
  })();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
