import { Redis } from 'ioredis';
import { redisConnection, triggersChannel, type HearthConfig } from '@hearth/core';
import type { FunctionCatalog } from '../function-catalog.ts';
import type { InstancePool } from './instance-pool.ts';
import type { ScaleBook } from './scale-book.ts';

/** Safety net for a missed announcement (Redis pub/sub is fire-and-forget). */
const RECONCILE_EVERY_MS = 30_000;

/**
 * Keeps the pools in line with the catalog: minWarm instances of each current version,
 * older versions retired. Runs at start, when the gateway announces a deploy, delete or
 * scale change, and every 30 s.
 */
export class PoolReconciler {
  private subscriber?: Redis;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;

  constructor(
    private readonly deps: { config: HearthConfig; catalog: FunctionCatalog; scale: ScaleBook; pool: InstancePool; onError(err: unknown): void },
  ) {}

  async start(): Promise<void> {
    const { config, onError } = this.deps;
    this.subscriber = new Redis(redisConnection(config.redisUrl));
    this.subscriber.on('error', onError);
    this.subscriber.on('message', () => void this.reconcile());
    await this.subscriber.subscribe(triggersChannel(config.queuePrefix));
    await this.reconcile();
    this.timer = setInterval(() => void this.reconcile(), RECONCILE_EVERY_MS);
    this.timer.unref();
  }

  /** One pass at a time; a request during a pass runs one more pass after it. */
  reconcile(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.pass();
        } catch (err) {
          this.deps.onError(err);
        }
      } while (this.again);
    })().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<void> {
    const { catalog, scale, pool } = this.deps;
    const [current] = await Promise.all([catalog.list(), scale.load()]);
    const keys = new Map<string, string>();
    for (const fn of current) {
      const target = scale.target(fn);
      keys.set(fn.name, target.key);
      pool.updateTarget(target);
      if (target.minWarm > 0) pool.ensureWarm(target);
    }
    pool.retireOthers(keys);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    this.subscriber?.disconnect();
  }
}
