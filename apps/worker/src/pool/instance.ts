import type { InstanceStatus } from '@hearth/core';
import type { Sandbox } from '@hearth/runtime';
import type { CurrentFunction } from '../function-catalog.ts';

/** How a call got its instance: one that was running, a specialized stem cell, or a new one. */
export type StartKind = 'warm' | 'stemcell' | 'cold';

export type InstanceState = 'starting' | 'ready' | 'paused' | 'stopping';

/** What a version's pool is sized by; from the job's spec, with `hearth scale` overrides applied. */
export interface PoolTarget {
  /** `name@version:digest`: an instance only ever serves its exact version. */
  key: string;
  fn: CurrentFunction;
  concurrency: number;
  minWarm: number;
  maxInstances: number;
  idleTtlSec: number;
  memoryMb: number;
}

/** A running (or starting) sandbox serving one function version. */
export interface PoolInstance {
  /** The sandbox's id once started (a stem cell keeps its own). */
  id: string;
  readonly key: string;
  readonly functionName: string;
  readonly version: number;
  /** What it counts in the worker's memory budget: its limit, or a microVM's whole guest RAM once started. */
  memoryMb: number;
  readonly concurrency: number;
  readonly startedAt: number;
  sandbox?: Sandbox;
  state: InstanceState;
  /** How it was started; the calls it takes while it becomes ready count as this kind. */
  startKind: Exclude<StartKind, 'warm'>;
  inflight: number;
  calls: number;
  lastUsedAt: number;
  /** Set once it has served its first calls: later ones are warm. */
  served: boolean;
  /** A stem cell's specialization: mounting the function's code, loading its handler. */
  specialize?: { mountMs: number; loadMs: number };
  /** The cluster seat it holds (see SeatBook), until it is gone. */
  seat?: { key: string; id: string } | undefined;
  /** What the instance prints goes here (capped after each call). */
  logPath?: string;
  resuming?: Promise<void>;
  pausing?: Promise<void>;
  pauseTimer?: NodeJS.Timeout;
  idleTimer?: NodeJS.Timeout;
}

export function describeInstance(i: PoolInstance): InstanceStatus {
  const state = i.state === 'ready' ? (i.inflight > 0 ? 'busy' : 'idle') : i.state;
  return {
    id: i.id,
    function: i.functionName,
    version: i.version,
    state,
    start: i.startKind,
    inflight: i.inflight,
    calls: i.calls,
    memoryMb: i.memoryMb,
    startedAt: i.startedAt,
    lastUsedAt: i.lastUsedAt,
  };
}
