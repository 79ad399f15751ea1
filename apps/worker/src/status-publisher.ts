import type { Redis } from 'ioredis';
import { WORKER_STATUS_TTL_SEC, workerMetricsKey, workerStatusKey, type HearthConfig, type WorkerStatus } from '@hearth/core';
import type { WorkerMetrics } from './metrics.ts';

const REFRESH_MS = 5_000;
/** Changes come in bursts (a burst of starts); one write per burst is enough. */
const COALESCE_MS = 200;

/**
 * Publishes what this worker holds (for `hearth ps`) and its metrics (for the gateway's
 * /metrics) to Redis: on every change, coalesced, and every 5 s so the keys do not expire.
 */
export class StatusPublisher {
  private timer?: NodeJS.Timeout;
  private pending?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly deps: { config: HearthConfig; redis: Redis; metrics: WorkerMetrics; status: () => Omit<WorkerStatus, 'workerId' | 'at'>; onError(err: unknown): void },
  ) {}

  start(): void {
    void this.publish();
    this.timer = setInterval(() => void this.publish(), REFRESH_MS);
    this.timer.unref();
  }

  changed(): void {
    if (this.pending || this.closed) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      void this.publish();
    }, COALESCE_MS);
    this.pending.unref();
  }

  async publish(): Promise<void> {
    const { config, redis, metrics, status, onError } = this.deps;
    try {
      if (this.closed) return;
      const s = status();
      metrics.setState(s.instances, s.stemCells, s.memory.usedMb);
      const body: WorkerStatus = { workerId: config.workerId, at: Date.now(), ...s };
      const metricsJson = await metrics.registry.getMetricsAsJSON();
      await redis
        .multi()
        .set(workerStatusKey(config.queuePrefix, config.workerId), JSON.stringify(body), 'EX', WORKER_STATUS_TTL_SEC)
        .set(workerMetricsKey(config.queuePrefix, config.workerId), JSON.stringify(metricsJson), 'EX', WORKER_STATUS_TTL_SEC)
        .exec();
      // Closed while writing: the status must not outlive close().
      if (this.closed) await redis.del(workerStatusKey(config.queuePrefix, config.workerId));
    } catch (err) {
      onError(err);
    }
  }

  /** Removes the status (the worker has no instances any more); metrics stay until they expire. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.pending);
    await this.deps.redis.del(workerStatusKey(this.deps.config.queuePrefix, this.deps.config.workerId)).catch(this.deps.onError);
  }
}
