import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import {
  ASYNC_LOCK_CLASSES_SEC,
  QUEUES,
  asyncQueueName,
  redisConnection,
  triggersChannel,
  type HearthConfig,
} from '@hearth/core';
import type { Db } from '@hearth/core/db';
import { createAsyncProcessor } from './async-processor.ts';
import { CallLog } from './call-log.ts';
import { processCallback } from './callback-processor.ts';
import type { ProcessInvoke } from './event-invoke.ts';
import { FunctionCatalog } from './function-catalog.ts';
import { loadLockSettings, lockOptions } from './lock-settings.ts';
import { TriggerReconciler } from './trigger-reconciler.ts';

/** Safety net for a missed "triggers changed" announcement (Redis pub/sub is fire-and-forget). */
const RECONCILE_EVERY_MS = 30_000;

export interface TriggerPlane {
  reconciler: TriggerReconciler;
  /** Stops taking jobs, waits for those in flight, closes connections. May be called twice. */
  close(): Promise<void>;
}

/**
 * Everything a worker runs besides synchronous calls: one Worker per async lock class
 * (async calls and cron ticks), the callback deliverer, and the trigger reconciler with its
 * subscription to the gateway's announcements.
 */
export async function startTriggerPlane(opts: {
  config: HearthConfig;
  db: Db;
  processInvoke: ProcessInvoke;
  onError: (err: unknown) => void;
}): Promise<TriggerPlane> {
  const { config, db, processInvoke, onError } = opts;
  const connection = redisConnection(config.redisUrl);
  const prefix = config.queuePrefix;
  const locks = loadLockSettings();
  const calls = new CallLog(db, onError);
  const catalog = new FunctionCatalog(db);

  const callbacksQueue = new Queue(QUEUES.callbacks, { connection, prefix });
  callbacksQueue.on('error', onError);
  const asyncQueues = new Map<string, Queue>();
  for (const sec of ASYNC_LOCK_CLASSES_SEC) {
    const queue = new Queue(asyncQueueName(sec), { connection, prefix });
    queue.on('error', onError);
    asyncQueues.set(asyncQueueName(sec), queue);
  }

  const processAsync = createAsyncProcessor({ calls, catalog, processInvoke, callbacks: callbacksQueue });
  const workers: Worker[] = [];
  for (const sec of ASYNC_LOCK_CLASSES_SEC) {
    // The class bounds its functions' timeouts, so the lock outlasts any of them (see lock-settings.ts).
    workers.push(new Worker(asyncQueueName(sec), processAsync, { connection, prefix, concurrency: config.workerConcurrency, ...lockOptions(sec * 1000, locks) }));
  }
  workers.push(new Worker(QUEUES.callbacks, processCallback, { connection, prefix, concurrency: config.workerConcurrency }));
  for (const w of workers) w.on('error', onError);

  const reconciler = new TriggerReconciler({
    catalog,
    consumer: { connection, calls, processInvoke, locks, onError },
    asyncQueues,
    onError,
  });

  const subscriber = new Redis(connection);
  subscriber.on('error', onError);
  subscriber.on('message', () => void reconciler.reconcile());
  await subscriber.subscribe(triggersChannel(prefix));
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  await reconciler.reconcile();
  const timer = setInterval(() => void reconciler.reconcile(), RECONCILE_EVERY_MS);

  let closing: Promise<void> | undefined;
  return {
    reconciler,
    close: () =>
      (closing ??= (async () => {
        clearInterval(timer);
        subscriber.disconnect();
        await reconciler.close();
        await Promise.all(workers.map((w) => w.close()));
        await calls.flush();
        await Promise.all([callbacksQueue, ...asyncQueues.values()].map((q) => q.close()));
      })()),
  };
}
