/**
 * Redis keys through which workers tell the gateway what they hold, in one place. Each
 * expires unless its worker refreshes it, so a worker that died drops out by itself.
 */
export const WORKER_STATUS_TTL_SEC = 15;

/** JSON `WorkerStatus`: the worker's instances and stem cells, for `hearth ps`. */
export const workerStatusKey = (queuePrefix: string, workerId: string) => `${queuePrefix}:worker:${workerId}:status`;

/** JSON of prom-client's getMetricsAsJSON(): the gateway's /metrics sums them over workers. */
export const workerMetricsKey = (queuePrefix: string, workerId: string) => `${queuePrefix}:worker:${workerId}:metrics`;

/** The pattern matching every worker's key of one kind. */
export const workerKeyPattern = (queuePrefix: string, kind: 'status' | 'metrics') => `${queuePrefix}:worker:*:${kind}`;

/** One line of `hearth ps`. */
export interface InstanceStatus {
  id: string;
  function: string;
  version: number;
  state: 'starting' | 'idle' | 'busy' | 'paused' | 'stopping';
  start: 'cold' | 'stemcell';
  inflight: number;
  calls: number;
  memoryMb: number;
  startedAt: number;
  lastUsedAt: number;
}

export interface WorkerStatus {
  workerId: string;
  at: number;
  memory: { usedMb: number; totalMb: number };
  instances: InstanceStatus[];
  stemCells: Record<string, { ready: number; starting: number }>;
}

/**
 * A worker's own invoke queue: the gateway puts a call there when that worker holds an
 * instance of the call's version, so a steady stream stays warm on whichever worker has it.
 * BullMQ queue names may not hold ':'.
 */
export const workerQueueName = (workerId: string) => `hearth-invoke-w-${workerId.replace(/[^A-Za-z0-9._-]/g, '_')}`;

/** Set of worker ids that have had a queue of their own: what the rescuer looks through. */
export const workerQueuesKey = (queuePrefix: string) => `${queuePrefix}:worker-queues`;

/** Held by the one live worker that drains a dead worker's queue. */
export const rescueLockKey = (queuePrefix: string, workerId: string) => `${queuePrefix}:worker:${workerId}:rescue`;
