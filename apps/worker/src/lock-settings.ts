/**
 * How long a job's lock lasts and how often stalled jobs are looked for. BullMQ renews the
 * lock of every running job while its worker lives; the lock duration only decides what
 * happens when renewal stops. Hearth sets it from the function's timeout (plus a grace for
 * the cold start), so a job is taken for stalled only after its worker has been gone for
 * longer than the function could legitimately run: a slow call is never run twice, and a
 * dead worker's job is picked up by a live one within lockDuration + stalledInterval.
 */
export interface LockSettings {
  /** Added to the function's timeout: time for a cold start (pull, unpack, sandbox start). */
  graceMs: number;
  /** The longest wait between two stalled-job checks. */
  maxStalledIntervalMs: number;
}

const int = (value: string | undefined, fallback: number): number => {
  const n = Number(value);
  return value && Number.isInteger(n) && n > 0 ? n : fallback;
};

/** HEARTH_LOCK_GRACE_MS (default 10000) and HEARTH_STALLED_INTERVAL_MS (default 30000, BullMQ's). */
export function loadLockSettings(env: NodeJS.ProcessEnv = process.env): LockSettings {
  return {
    graceMs: int(env.HEARTH_LOCK_GRACE_MS, 10_000),
    maxStalledIntervalMs: int(env.HEARTH_STALLED_INTERVAL_MS, 30_000),
  };
}

/** BullMQ Worker options for jobs that may run up to `timeoutMs`. */
export function lockOptions(timeoutMs: number, settings: LockSettings) {
  const lockDuration = timeoutMs + settings.graceMs;
  return {
    lockDuration,
    stalledInterval: Math.min(lockDuration, settings.maxStalledIntervalMs),
    // One stall (a worker killed mid-job) is recovered; a job that kills every worker it lands on fails.
    maxStalledCount: 1,
  };
}

/**
 * Worker options for the synchronous invoke queues. A caller waits, so a call whose worker
 * died must be picked up soon: a short lock (renewed every 5 s while the worker lives, so a
 * slow call is not taken for stalled) and a check for stalled calls every 5 s.
 * HEARTH_SYNC_LOCK_MS (default 10000).
 */
export function syncLockOptions(env: NodeJS.ProcessEnv = process.env) {
  const lockDuration = int(env.HEARTH_SYNC_LOCK_MS, 10_000);
  return { lockDuration, stalledInterval: Math.max(1_000, Math.floor(lockDuration / 2)), maxStalledCount: 1 };
}
