import type { HearthConfig } from '@hearth/core';
import type { FunctionStore } from './function-store.ts';
import type { Invoker } from './invoker.ts';
import type { LogReader } from './log-reader.ts';
import type { CallStore } from './call-store.ts';
import type { JobQueues } from './job-queues.ts';
import type { ScaleStore } from './scale-store.ts';
import type { WorkerDirectory } from './worker-directory.ts';
import type { WarmRouter } from './warm-router.ts';
import type { TraceStore } from './trace-store.ts';

/** What routes need; main.ts wires the real ones, tests can wire their own. */
export interface AppDeps {
  config: HearthConfig;
  functions: FunctionStore;
  invoker: Invoker;
  logs: LogReader;
  /** Async calls, queue jobs and cron ticks (Postgres). */
  calls: CallStore;
  /** Producer side of async calls and trigger queues. */
  jobs: JobQueues;
  /** The span store, read by /system/traces and the traces page. */
  traces: TraceStore;
  /** `hearth scale` overrides (Postgres). */
  scale: ScaleStore;
  /** What the workers hold and their metrics (Redis). */
  workers: WorkerDirectory;
  /** Which invoke queue a synchronous call goes to. */
  router: WarmRouter;
}
