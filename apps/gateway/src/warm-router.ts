import { QUEUES, WORKER_STATUS_TTL_SEC, workerQueueName, type WorkerStatus } from '@hearth/core';
import type { FunctionRecord } from './function-store.ts';
import type { WorkerDirectory } from './worker-directory.ts';

/** How stale a view of the workers a call may be routed by; reading Redis per call would cost more than it saves. */
const REFRESH_MS = 500;

/**
 * Picks the queue for a synchronous call: the own queue of a worker that holds an instance
 * of the call's version (the one with the most idle ones), else the shared queue.
 */
export class WarmRouter {
  private statuses: WorkerStatus[] = [];
  private readAt = 0;
  private refreshing?: Promise<void>;

  constructor(private readonly workers: WorkerDirectory) {}

  async queueFor(fn: FunctionRecord): Promise<string> {
    if (Date.now() - this.readAt > REFRESH_MS) await this.refresh();
    const fresh = Date.now() - WORKER_STATUS_TTL_SEC * 1000;
    let best: { workerId: string; idle: number; held: number } | undefined;
    for (const w of this.statuses) {
      if (w.at < fresh) continue;
      let idle = 0;
      let held = 0;
      for (const i of w.instances) {
        if (i.function !== fn.name || i.version !== fn.version || i.state === 'stopping') continue;
        held += 1;
        if (i.state === 'idle' || i.state === 'paused') idle += 1;
      }
      if (held === 0) continue;
      if (!best || idle > best.idle || (idle === best.idle && held > best.held)) best = { workerId: w.workerId, idle, held };
    }
    return best ? workerQueueName(best.workerId) : QUEUES.invoke;
  }

  /** Live workers' ids as of the last read. */
  liveWorkers(): string[] {
    return this.statuses.map((s) => s.workerId);
  }

  private refresh(): Promise<void> {
    this.refreshing ??= this.workers
      .statuses()
      .then(
        (s) => {
          this.statuses = s;
        },
        // Without Redis the call fails at the queue anyway; routing falls back to the shared queue.
        () => {
          this.statuses = [];
        },
      )
      .finally(() => {
        this.readAt = Date.now();
        this.refreshing = undefined;
      });
    return this.refreshing;
  }
}
