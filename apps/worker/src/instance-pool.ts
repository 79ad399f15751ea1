import type { Sandbox } from '@hearth/runtime';

/** A running sandbox that serves one function version. */
export interface Instance {
  readonly key: string;
  readonly sandbox: Sandbox;
  readonly startedAt: number;
  lastUsedAt: number;
  calls: number;
  idleTimer?: NodeJS.Timeout;
}

/**
 * Plain keep-alive: an instance serves one call at a time and, when done, waits idle for the
 * next call of the same version until its idle TTL passes. (Warm pools, stem cells and
 * eviction build on this.)
 */
export class InstancePool {
  private readonly idle = new Map<string, Instance[]>();
  private readonly all = new Set<Instance>();
  private closed = false;

  constructor(private readonly onError: (err: unknown) => void = () => {}) {}

  /** An idle instance of `key`, or a new one from `create`; `cold` says which. */
  async acquire(key: string, create: () => Promise<Sandbox>): Promise<{ instance: Instance; cold: boolean }> {
    const idle = this.idle.get(key);
    const warm = idle?.pop();
    if (warm) {
      clearTimeout(warm.idleTimer);
      return { instance: warm, cold: false };
    }
    if (this.closed) throw new Error('pool is closed');
    const sandbox = await create();
    const instance: Instance = { key, sandbox, startedAt: Date.now(), lastUsedAt: Date.now(), calls: 0 };
    this.all.add(instance);
    return { instance, cold: true };
  }

  /** Back to idle after a successful call; released after `idleTtlSec` without another call. */
  release(instance: Instance, idleTtlSec: number): void {
    instance.lastUsedAt = Date.now();
    instance.calls += 1;
    if (this.closed || idleTtlSec <= 0) {
      void this.discard(instance);
      return;
    }
    const list = this.idle.get(instance.key) ?? [];
    list.push(instance);
    this.idle.set(instance.key, list);
    instance.idleTimer = setTimeout(() => {
      const current = this.idle.get(instance.key);
      const at = current?.indexOf(instance) ?? -1;
      if (current && at >= 0) current.splice(at, 1);
      void this.discard(instance);
    }, idleTtlSec * 1000);
    instance.idleTimer.unref();
  }

  /** Stops an instance that must not serve again (timed out, crashed, expired). */
  async discard(instance: Instance): Promise<void> {
    clearTimeout(instance.idleTimer);
    this.all.delete(instance);
    try {
      await instance.sandbox.stop();
    } catch (err) {
      this.onError(err);
    }
  }

  get size(): number {
    return this.all.size;
  }

  /** Stops every instance, idle or not; used on shutdown after in-flight calls are done. */
  async close(): Promise<void> {
    this.closed = true;
    this.idle.clear();
    await Promise.all([...this.all].map((i) => this.discard(i)));
  }
}
