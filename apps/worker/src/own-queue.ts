import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker, type ConnectionOptions, type Processor } from 'bullmq';
import type { Redis } from 'ioredis';
import { syncLockOptions } from './lock-settings.ts';
import { rescueLockKey, workerQueueName, workerQueuesKey, workerStatusKey, type HearthConfig } from '@hearth/core';

const RESCUE_EVERY_MS = 5_000;
const RESCUE_LOCK_SEC = 60;

interface Deps {
  config: HearthConfig;
  redis: Redis;
  connection: ConnectionOptions;
  processor: Processor;
  onError(err: unknown): void;
}

/**
 * This worker's own invoke queue, where the gateway sends calls for versions it holds warm
 * (WarmRouter), and the rescue of other workers' queues: a worker that died leaves calls
 * there, and a live worker drains them with the same processor, so their callers still get
 * an answer (stalled ones run again once their lock expires).
 */
export class OwnQueue {
  private readonly name: string;
  private worker?: Worker;
  private rescueTimer?: NodeJS.Timeout;
  private readonly rescues = new Map<string, Promise<void>>();
  private closed = false;

  constructor(private readonly deps: Deps) {
    this.name = workerQueueName(deps.config.workerId);
  }

  async start(): Promise<void> {
    const { config, redis, connection, processor, onError } = this.deps;
    await redis.sadd(workerQueuesKey(config.queuePrefix), config.workerId);
    this.worker = new Worker(this.name, processor, { connection, prefix: config.queuePrefix, concurrency: config.workerConcurrency, ...syncLockOptions() });
    this.worker.on('error', onError);
    await this.worker.waitUntilReady();
    this.rescueTimer = setInterval(() => void this.rescueDeadWorkers(), RESCUE_EVERY_MS);
    this.rescueTimer.unref();
  }

  /**
   * Takes the calls already routed here before closing. Call after the worker's status is
   * gone from Redis, so the gateway no longer routes here.
   */
  async drain(maxMs = 10_000): Promise<void> {
    this.closed = true;
    clearInterval(this.rescueTimer);
    const queue = new Queue(this.name, { connection: this.deps.connection, prefix: this.deps.config.queuePrefix });
    const deadline = Date.now() + maxMs;
    try {
      while (Date.now() < deadline && (await queue.getWaitingCount()) > 0) await sleep(100);
    } catch (err) {
      this.deps.onError(err);
    } finally {
      await queue.close();
    }
    await Promise.all([this.worker?.close(), ...this.rescues.values()]);
    await this.forgetIfEmpty();
  }

  /** A worker that leaves cleanly removes its queue, so nobody has to rescue it. */
  private async forgetIfEmpty(): Promise<void> {
    const { config, redis, connection, onError } = this.deps;
    const queue = new Queue(this.name, { connection, prefix: config.queuePrefix });
    try {
      const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
      if (Object.values(counts).some((n) => n > 0)) return;
      await queue.obliterate({ force: true });
      await redis.srem(workerQueuesKey(config.queuePrefix), config.workerId);
    } catch (err) {
      onError(err);
    } finally {
      await queue.close();
    }
  }

  private async rescueDeadWorkers(): Promise<void> {
    const { config, redis, onError } = this.deps;
    try {
      const ids = await redis.smembers(workerQueuesKey(config.queuePrefix));
      for (const id of ids) {
        if (id === config.workerId || this.rescues.has(id) || this.closed) continue;
        if (await redis.exists(workerStatusKey(config.queuePrefix, id))) continue;
        const got = await redis.set(rescueLockKey(config.queuePrefix, id), config.workerId, 'EX', RESCUE_LOCK_SEC, 'NX');
        if (got !== 'OK') continue;
        const rescue = this.rescue(id).finally(() => this.rescues.delete(id));
        this.rescues.set(id, rescue);
      }
    } catch (err) {
      onError(err);
    }
  }

  /** Runs the dead worker's queue until nothing is left in it, then forgets the queue. */
  private async rescue(deadId: string): Promise<void> {
    const { config, redis, connection, processor, onError } = this.deps;
    const name = workerQueueName(deadId);
    const queue = new Queue(name, { connection, prefix: config.queuePrefix });
    // Its stalled-job check moves calls the dead worker held back to waiting once their lock expires.
    const worker = new Worker(name, processor, { connection, prefix: config.queuePrefix, concurrency: config.workerConcurrency, ...syncLockOptions() });
    worker.on('error', onError);
    try {
      for (;;) {
        await sleep(1_000);
        await redis.expire(rescueLockKey(config.queuePrefix, deadId), RESCUE_LOCK_SEC);
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
        const left = Object.values(counts).reduce((a, b) => a + b, 0);
        if (left === 0 || this.closed) break;
      }
      if (!this.closed) {
        await worker.close();
        // Results of finished calls are in Redis a while for the gateway; then the queue's keys go.
        await queue.obliterate({ force: true }).catch(onError);
        await redis.srem(workerQueuesKey(config.queuePrefix), deadId);
        console.log(`worker: drained the queue of worker ${deadId}, which is gone`);
      }
    } catch (err) {
      onError(err);
    } finally {
      await worker.close().catch(onError);
      await queue.close().catch(onError);
      await redis.del(rescueLockKey(config.queuePrefix, deadId)).catch(onError);
    }
  }
}
