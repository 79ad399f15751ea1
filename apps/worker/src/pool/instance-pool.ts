import { randomBytes } from 'node:crypto';
import { HearthError } from '@hearth/core';
import type { Sandbox } from '@hearth/runtime';
import type { InstanceStatus } from '@hearth/core';
import { describeInstance, type PoolInstance, type PoolTarget, type StartKind } from './instance.ts';
import type { MemoryBudget } from './memory-budget.ts';
import type { SeatBook } from './cluster-seats.ts';

/** Starts a sandbox for a version; the factory decides between a stem cell and a cold start. */
export type StartInstance = (
  target: PoolTarget,
  id: string,
) => Promise<{ sandbox: Sandbox; startKind: 'cold' | 'stemcell'; logPath?: string; specialize?: { mountMs: number; loadMs: number } }>;

/** Something else holding budget that may be stopped to make room (an idle stem cell). */
export interface Evictable {
  lastUsedAt: number;
  memoryMb: number;
  evict(): Promise<void>;
}

export interface Lease {
  instance: PoolInstance;
  start: StartKind;
  /** Time from acquire() to the instance being ready for this call (queueing, start, thaw). */
  acquireMs: number;
  /** Back to the pool; `healthy: false` stops the instance (timed out, crashed). */
  release(opts?: { healthy?: boolean }): void;
}

export interface PoolEvents {
  started?(instance: PoolInstance, ms: number): void;
  stopped?(instance: PoolInstance, why: 'idle' | 'evicted' | 'retired' | 'unhealthy' | 'closed' | 'failed'): void;
  changed?(): void;
}

export interface InstancePoolOptions {
  budget: MemoryBudget;
  start: StartInstance;
  /** Prefix of sandbox ids, so a restarted worker can find what it left. */
  idPrefix: string;
  /** An idle instance is frozen this long after its last call; 0 never. */
  pauseAfterMs: number;
  evictables?: () => Evictable[];
  /** Seats across workers, so maxInstances and minWarm hold for the cluster; without it, per worker. */
  seats?: SeatBook;
  events?: PoolEvents;
  onError?: (err: unknown) => void;
}

interface Waiter {
  since: number;
  /** The call can go back to its queue for another worker (see SEATS_FULL); else it waits for a seat. */
  handOff: boolean;
  resolve(lease: Lease): void;
  reject(err: unknown): void;
  timer?: NodeJS.Timeout;
}

interface VersionPool {
  target: PoolTarget;
  instances: PoolInstance[];
  waiters: Waiter[];
  /** A newer version is current: instances stop once idle, none are kept warm. */
  retired: boolean;
  /** Every seat of the version was taken (by other workers) when this worker last asked: no new ask before then. */
  seatsFullUntil?: number;
  seatsTimer?: NodeJS.Timeout;
}

/** How long a worker waits before asking again for a seat that other workers hold. */
const SEATS_RETRY_MS = 250;

/**
 * A call this worker cannot serve: every seat of its version is held by other workers and
 * this one has no instance of it. Its job goes back to the queue for a worker that has one.
 */
export const SEATS_FULL = 'seatsFull';

/**
 * The shortest time an idle instance is kept (with `idleTtlSec: 0`): its teardown (`runc
 * delete`, unmounts: each a fork of the worker) would otherwise run while the call it just
 * answered is still being completed in Redis and delay that answer.
 */
export const MIN_IDLE_MS = 50;

/**
 * Per-version pools of instances on one worker. A call takes a free slot of a ready
 * instance (`concurrency` calls each), else waits; an instance is started only when the
 * waiting calls outnumber the slots already on their way, the version's `maxInstances`
 * allows, and its memory fits the worker's budget after evicting idle instances, least
 * recently used first. Idle instances are paused, then released after `idleTtlSec`, down to
 * `minWarm`.
 */
export class InstancePool {
  private readonly versions = new Map<string, VersionPool>();
  /** Starts under way: close() waits for them, so no sandbox outlives the worker. */
  private readonly starting = new Set<Promise<unknown>>();
  private closed = false;

  constructor(private readonly opts: InstancePoolOptions) {}

  /**
   * A slot on an instance of `target`'s version. Waits while every instance is busy and the
   * cap or the memory budget allows no other, until `deadline` (then TIMEOUT). With
   * `handOff`, a call this worker cannot serve because other workers hold every seat of the
   * version fails at once with UNAVAILABLE and details[SEATS_FULL], for its job to go back to
   * the queue.
   */
  acquire(target: PoolTarget, deadline: number, opts: { handOff?: boolean } = {}): Promise<Lease> {
    if (this.closed) return Promise.reject(new HearthError('UNAVAILABLE', 'worker is shutting down'));
    const vp = this.versionPool(target);
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = { since: performance.now(), handOff: opts.handOff === true, resolve, reject };
      const waitMs = deadline - Date.now();
      waiter.timer = setTimeout(() => {
        const at = vp.waiters.indexOf(waiter);
        if (at < 0) return;
        vp.waiters.splice(at, 1);
        const busy = vp.instances.filter((i) => i.state !== 'stopping').length;
        reject(
          new HearthError(
            'TIMEOUT',
            `no instance of "${target.fn.name}" was free in time: ${busy} of at most ${target.maxInstances} running, ${target.concurrency} call(s) each`,
          ),
        );
      }, Math.max(0, waitMs));
      waiter.timer.unref();
      vp.waiters.push(waiter);
      this.dispatch(vp);
    });
  }

  /** Starts instances until `target.minWarm` are running (within the cap and the budget). */
  ensureWarm(target: PoolTarget): void {
    if (this.closed) return;
    const vp = this.versionPool(target);
    vp.retired = false;
    vp.target = target;
    let live = this.live(vp).length;
    const keep = Math.min(target.minWarm, target.maxInstances);
    while (live < keep && this.opts.budget.tryTake(target.memoryMb)) {
      this.startInstance(vp, keep);
      live += 1;
    }
  }

  /**
   * Versions not in `current` (function name → current version key) are retired: idle
   * instances stop now, busy ones when their calls finish.
   */
  retireOthers(current: Map<string, string>): void {
    for (const vp of this.versions.values()) {
      if (current.get(vp.target.fn.name) === vp.target.key) continue;
      vp.retired = true;
      for (const instance of [...vp.instances]) {
        if (instance.state !== 'starting' && instance.inflight === 0) void this.stopInstance(vp, instance, 'retired');
      }
      this.forgetIfEmpty(vp);
    }
  }

  /** Applies new sizes (a `hearth scale`) to a version known here, which is current. */
  updateTarget(target: PoolTarget): void {
    const vp = this.versions.get(target.key);
    if (!vp) return;
    vp.target = target;
    vp.retired = false;
    this.dispatch(vp);
  }

  snapshot(): InstanceStatus[] {
    return [...this.versions.values()].flatMap((vp) => vp.instances.map(describeInstance));
  }

  get size(): number {
    let n = 0;
    for (const vp of this.versions.values()) n += vp.instances.length;
    return n;
  }

  /** Stops every instance; call after the calls in flight are done. Waiting calls fail. */
  async close(): Promise<void> {
    this.closed = true;
    const stops: Promise<void>[] = [];
    for (const vp of this.versions.values()) {
      for (const w of vp.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new HearthError('UNAVAILABLE', 'worker is shutting down'));
      }
      for (const instance of [...vp.instances]) stops.push(this.stopInstance(vp, instance, 'closed'));
    }
    await Promise.all([...stops, ...this.starting]);
  }

  private versionPool(target: PoolTarget): VersionPool {
    let vp = this.versions.get(target.key);
    if (!vp) {
      vp = { target, instances: [], waiters: [], retired: false };
      this.versions.set(target.key, vp);
    } else {
      vp.target = target;
    }
    return vp;
  }

  private live(vp: VersionPool): PoolInstance[] {
    return vp.instances.filter((i) => i.state !== 'stopping');
  }

  /** Hands free slots to waiting calls, then starts what the rest need. */
  private dispatch(vp: VersionPool): void {
    while (vp.waiters.length > 0) {
      const instance = this.freeInstance(vp);
      if (!instance) break;
      this.assign(vp, instance, vp.waiters.shift()!);
    }
    if (vp.waiters.length === 0 || this.closed) return;

    const { concurrency, maxInstances, memoryMb } = vp.target;
    if (vp.seatsFullUntil !== undefined && Date.now() < vp.seatsFullUntil) return;
    const starting = vp.instances.filter((i) => i.state === 'starting').length;
    let uncovered = vp.waiters.length - starting * concurrency;
    let live = this.live(vp).length;
    while (uncovered > 0 && live < maxInstances) {
      if (!this.opts.budget.tryTake(memoryMb)) {
        this.makeRoom(memoryMb);
        return;
      }
      this.startInstance(vp, maxInstances);
      uncovered -= concurrency;
      live += 1;
    }
  }

  /** The ready instance with the most calls already in flight that still has a slot: packs calls, lets others go idle. */
  private freeInstance(vp: VersionPool): PoolInstance | undefined {
    let best: PoolInstance | undefined;
    for (const i of vp.instances) {
      if ((i.state !== 'ready' && i.state !== 'paused') || i.inflight >= i.concurrency) continue;
      if (!best || i.inflight > best.inflight || (i.inflight === best.inflight && i.lastUsedAt > best.lastUsedAt)) best = i;
    }
    return best;
  }

  private assign(vp: VersionPool, instance: PoolInstance, waiter: Waiter): void {
    clearTimeout(waiter.timer);
    clearTimeout(instance.pauseTimer);
    clearTimeout(instance.idleTimer);
    instance.inflight += 1;
    this.opts.events?.changed?.();
    const start: StartKind = instance.served ? 'warm' : instance.startKind;
    if (instance.state === 'paused') {
      instance.state = 'ready';
      // A freeze still under way finishes first: the freezer takes one state change at a time.
      const frozen = (instance.pausing ?? Promise.resolve()).catch(() => undefined);
      instance.resuming = frozen.then(() => instance.sandbox?.resume?.()).finally(() => (instance.resuming = undefined));
    }
    let released = false;
    const lease: Lease = {
      instance,
      start,
      acquireMs: 0,
      release: (opts) => {
        if (released) return;
        released = true;
        this.release(vp, instance, opts?.healthy ?? true);
      },
    };
    const resuming = instance.resuming;
    if (!resuming) {
      lease.acquireMs = performance.now() - waiter.since;
      waiter.resolve(lease);
      return;
    }
    resuming.then(
      () => {
        lease.acquireMs = performance.now() - waiter.since;
        waiter.resolve(lease);
      },
      (err: unknown) => {
        // A thaw that failed leaves the instance in an unknown state: drop it.
        lease.release({ healthy: false });
        waiter.reject(new HearthError('UNAVAILABLE', `could not resume instance ${instance.id}: ${(err as Error).message}`));
      },
    );
  }

  private release(vp: VersionPool, instance: PoolInstance, healthy: boolean): void {
    instance.inflight -= 1;
    instance.calls += 1;
    instance.lastUsedAt = Date.now();
    if (!healthy) {
      void this.stopInstance(vp, instance, 'unhealthy');
      this.dispatch(vp);
      return;
    }
    this.dispatch(vp);
    if (instance.inflight > 0 || instance.state === 'stopping') return;
    if (vp.retired || this.closed) {
      void this.stopInstance(vp, instance, 'retired');
      return;
    }
    this.armIdleTimers(vp, instance);
    this.opts.events?.changed?.();
  }

  private armIdleTimers(vp: VersionPool, instance: PoolInstance): void {
    if (this.opts.pauseAfterMs > 0 && instance.sandbox?.pause) {
      instance.pauseTimer = setTimeout(() => void this.pause(instance), this.opts.pauseAfterMs);
      instance.pauseTimer.unref();
    }
    instance.idleTimer = setTimeout(() => this.expire(vp, instance), Math.max(vp.target.idleTtlSec * 1000, MIN_IDLE_MS));
    instance.idleTimer.unref();
  }

  private async pause(instance: PoolInstance): Promise<void> {
    if (instance.state !== 'ready' || instance.inflight > 0 || !instance.sandbox?.pause) return;
    instance.state = 'paused';
    instance.pausing = instance.sandbox.pause();
    try {
      await instance.pausing;
      this.opts.events?.changed?.();
    } catch (err) {
      // Still runnable: a failed freeze only costs the CPU an idle instance uses.
      if (instance.state === 'paused') instance.state = 'ready';
      this.opts.onError?.(err);
    } finally {
      instance.pausing = undefined;
    }
  }

  /** Idle TTL passed: stop it unless the version would drop below minWarm. */
  private expire(vp: VersionPool, instance: PoolInstance): void {
    if (instance.inflight > 0 || instance.state === 'starting' || instance.state === 'stopping') return;
    if (!vp.retired && this.live(vp).length <= vp.target.minWarm) {
      // Kept for minWarm; looked at again later, in case the function is scaled down.
      this.armIdleTimers(vp, instance);
      return;
    }
    void this.stopInstance(vp, instance, 'idle');
  }

  /** Starts an instance once the version has a seat for it among at most `seats` (see SeatBook). */
  private startInstance(vp: VersionPool, seats: number): void {
    const { target } = vp;
    const id = `${this.opts.idPrefix}${target.fn.name.slice(0, 16)}-${randomBytes(4).toString('hex')}`;
    const now = Date.now();
    const instance: PoolInstance = {
      id,
      key: target.key,
      functionName: target.fn.name,
      version: target.fn.version,
      memoryMb: target.memoryMb,
      concurrency: target.concurrency,
      startedAt: now,
      lastUsedAt: now,
      state: 'starting',
      startKind: 'cold',
      inflight: 0,
      calls: 0,
      served: false,
    };
    vp.instances.push(instance);
    this.opts.events?.changed?.();
    const t0 = performance.now();
    const book = this.opts.seats;
    const seated = book
      ? book.reserve(target.key, id, seats).then((ok) => {
          if (!ok) throw new SeatsFull(target);
          instance.seat = { key: target.key, id };
        })
      : Promise.resolve();
    const started = seated.then(() => this.opts.start(target, id)).then(
      ({ sandbox, startKind, specialize, logPath }) => {
        instance.sandbox = sandbox;
        // A microVM holds its whole guest RAM, more than the function's limit: the budget counts that.
        const extraMb = (sandbox.footprintMb ?? 0) - instance.memoryMb;
        if (extraMb > 0) {
          this.opts.budget.take(extraMb);
          instance.memoryMb += extraMb;
        }
        if (specialize) instance.specialize = specialize;
        if (logPath) instance.logPath = logPath;
        instance.id = sandbox.id;
        instance.startKind = startKind;
        if (instance.state === 'stopping' || this.closed) {
          instance.state = 'ready';
          // Returned, so close() (which waits for starts under way) waits for this stop too.
          return this.stopInstance(vp, instance, this.closed ? 'closed' : 'retired');
        }
        instance.state = 'ready';
        this.opts.events?.started?.(instance, performance.now() - t0);
        this.dispatch(vp);
        instance.served = true;
        if (instance.inflight === 0) {
          if (vp.retired) void this.stopInstance(vp, instance, 'retired');
          else this.armIdleTimers(vp, instance);
        }
        this.opts.events?.changed?.();
      },
      (err: unknown) => {
        this.remove(vp, instance);
        this.opts.budget.give(instance.memoryMb);
        this.releaseSeat(instance);
        if (err instanceof SeatsFull) {
          this.seatsFull(vp);
          return;
        }
        this.opts.events?.stopped?.(instance, 'failed');
        // The calls this start was for learn why; others keep waiting for instances already on their way.
        for (const w of vp.waiters.splice(0, vp.target.concurrency)) {
          clearTimeout(w.timer);
          w.reject(err);
        }
        this.kick();
      },
    );
    this.starting.add(started);
    void started.finally(() => this.starting.delete(started));
  }

  private async stopInstance(vp: VersionPool, instance: PoolInstance, why: Parameters<NonNullable<PoolEvents['stopped']>>[1]): Promise<void> {
    if (instance.state === 'stopping') return;
    const wasStarting = instance.state === 'starting';
    instance.state = 'stopping';
    clearTimeout(instance.pauseTimer);
    clearTimeout(instance.idleTimer);
    this.opts.events?.changed?.();
    // A start still under way is stopped when it finishes (see startInstance).
    if (wasStarting) return;
    const stopped = (instance.sandbox?.stop() ?? Promise.resolve()).catch((err: unknown) => this.opts.onError?.(err));
    await this.opts.budget.evicting(instance.memoryMb, stopped);
    this.remove(vp, instance);
    this.releaseSeat(instance);
    this.opts.events?.stopped?.(instance, why);
    this.forgetIfEmpty(vp);
    this.kick();
  }

  private releaseSeat(instance: PoolInstance): void {
    const seat = instance.seat;
    if (!seat || !this.opts.seats) return;
    instance.seat = undefined;
    // A seat that cannot be given back now is freed by the next reserve once this worker's status expires.
    this.opts.seats.release(seat.key, seat.id).catch((err: unknown) => this.opts.onError?.(err));
  }

  /**
   * Other workers hold every seat. With an instance of its own, this worker's calls wait for
   * its slots; without one, calls that can be handed off fail with SEATS_FULL so their jobs
   * can go to a worker that has one. The rest wait; it asks again after SEATS_RETRY_MS.
   */
  private seatsFull(vp: VersionPool): void {
    vp.seatsFullUntil = Date.now() + SEATS_RETRY_MS;
    if (this.live(vp).length === 0) {
      const handedOff = vp.waiters.filter((w) => w.handOff);
      vp.waiters = vp.waiters.filter((w) => !w.handOff);
      for (const w of handedOff) {
        clearTimeout(w.timer);
        w.reject(
          new HearthError('UNAVAILABLE', `every instance of "${vp.target.fn.name}" allowed (maxInstances ${vp.target.maxInstances}) runs on other workers`, {
            details: { [SEATS_FULL]: true },
          }),
        );
      }
    }
    clearTimeout(vp.seatsTimer);
    vp.seatsTimer = setTimeout(() => {
      vp.seatsFullUntil = undefined;
      if (vp.waiters.length > 0) this.dispatch(vp);
    }, SEATS_RETRY_MS);
    vp.seatsTimer.unref();
    this.forgetIfEmpty(vp);
  }

  private remove(vp: VersionPool, instance: PoolInstance): void {
    const at = vp.instances.indexOf(instance);
    if (at >= 0) vp.instances.splice(at, 1);
    this.opts.events?.changed?.();
  }

  private forgetIfEmpty(vp: VersionPool): void {
    if (vp.retired && vp.instances.length === 0 && vp.waiters.length === 0) this.versions.delete(vp.target.key);
  }

  /** Memory came free: versions with waiting calls may start what they need. */
  private kick(): void {
    for (const vp of this.versions.values()) if (vp.waiters.length > 0) this.dispatch(vp);
  }

  /**
   * Stops idle instances (and idle stem cells), least recently used first, until `mb` fits
   * once they are gone. The waiting call is dispatched again when they have stopped.
   */
  private makeRoom(mb: number): void {
    let short = this.opts.budget.shortfall(mb);
    if (short <= 0) return;
    const candidates: Evictable[] = [...(this.opts.evictables?.() ?? [])];
    for (const vp of this.versions.values()) {
      for (const instance of vp.instances) {
        if ((instance.state !== 'ready' && instance.state !== 'paused') || instance.inflight > 0) continue;
        candidates.push({ lastUsedAt: instance.lastUsedAt, memoryMb: instance.memoryMb, evict: () => this.stopInstance(vp, instance, 'evicted') });
      }
    }
    candidates.sort((a, b) => a.lastUsedAt - b.lastUsedAt);
    for (const c of candidates) {
      if (short <= 0) break;
      short -= c.memoryMb;
      void c.evict();
    }
  }
}

/** Every seat of a version is held by other workers (see SeatBook). */
class SeatsFull extends Error {
  constructor(target: PoolTarget) {
    super(`every seat of ${target.key} is taken`);
  }
}
