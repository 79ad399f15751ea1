import type { HearthConfig } from '@hearth/core';
import type { FunctionStore } from './function-store.ts';
import type { Invoker } from './invoker.ts';
import type { LogReader } from './log-reader.ts';
import type { CallStore } from './call-store.ts';
import type { JobQueues } from './job-queues.ts';

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
}
