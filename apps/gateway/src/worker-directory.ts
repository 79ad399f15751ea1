import { Redis, type RedisOptions } from 'ioredis';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { HearthError, workerKeyPattern, type WorkerStatus } from '@hearth/core';

const unavailable = (err: unknown) => new HearthError('UNAVAILABLE', `Redis is not reachable: ${(err as Error).message}`, { cause: err });

/**
 * What the workers say they hold, read from the keys they refresh in Redis (a worker that
 * died drops out when its keys expire): instances for `hearth ps`, metrics for /metrics.
 */
export class WorkerDirectory {
  private readonly redis: Redis;

  constructor(
    connection: RedisOptions,
    private readonly prefix: string,
  ) {
    this.redis = new Redis({ ...connection, maxRetriesPerRequest: 1 });
    this.redis.on('error', () => {});
  }

  async statuses(): Promise<WorkerStatus[]> {
    const values = await this.readAll('status');
    return values.map((v) => JSON.parse(v) as WorkerStatus).sort((a, b) => a.workerId.localeCompare(b.workerId));
  }

  /** Every worker's metrics summed, in Prometheus' text format. */
  async metricsText(): Promise<string> {
    const values = await this.readAll('metrics');
    if (values.length === 0) return '';
    const registry = AggregatorRegistry.aggregate(values.map((v) => JSON.parse(v) as MetricObjectWithValues<MetricValue<string>>[]));
    return registry.metrics();
  }

  private async readAll(kind: 'status' | 'metrics'): Promise<string[]> {
    try {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await this.redis.scan(cursor, 'MATCH', workerKeyPattern(this.prefix, kind), 'COUNT', 200);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      if (keys.length === 0) return [];
      return (await this.redis.mget(keys)).filter((v): v is string => typeof v === 'string');
    } catch (err) {
      throw unavailable(err);
    }
  }

  close(): void {
    this.redis.disconnect();
  }
}
