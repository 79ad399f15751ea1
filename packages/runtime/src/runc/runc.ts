/**
 * A thin wrapper over the `runc` binary (Debian's runc 1.1.5). Each call is one exec of
 * runc; errors keep runc's own message, which names the container.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { HearthError } from '@hearth/core';

const exec = promisify(execFile);

const RUNC = process.env.HEARTH_RUNC ?? 'runc';

function runcError(what: string, err: unknown): HearthError {
  const e = err as { stderr?: string; message?: string; code?: string };
  if (e.code === 'ENOENT') return new HearthError('UNAVAILABLE', `runc is not installed (looked for "${RUNC}" in PATH)`, { cause: err });
  return new HearthError('UNAVAILABLE', `runc ${what}: ${(e.stderr || e.message || String(err)).trim()}`, { cause: err });
}

/** runc's message when the container is not there (any more). */
const NOT_EXIST = /does not exist|not exist|container not running/i;

/**
 * `runc run --detach`: resolves when the container process has started (runc exits then).
 * With no terminal, runc hands its stdio, here the log file, to the container process.
 * Returns runc's exit code; its error message, if any, is in the log.
 */
export function runcRunDetached(opts: { id: string; bundle: string; pidFile: string; logFd: number }): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(RUNC, ['run', '--detach', '--pid-file', opts.pidFile, '--bundle', opts.bundle, opts.id], {
      stdio: ['ignore', opts.logFd, opts.logFd],
    });
    child.on('error', (err) => reject(runcError('run', err)));
    child.on('close', (code) => resolve(code ?? 1));
  });
}

/** `runc delete --force`: kills (SIGKILL) if running, then removes state and cgroups. Idempotent. */
export async function runcDeleteForce(id: string): Promise<void> {
  try {
    await exec(RUNC, ['delete', '--force', id]);
  } catch (err) {
    if (NOT_EXIST.test((err as { stderr?: string }).stderr ?? '')) return;
    throw runcError(`delete ${id}`, err);
  }
}

/** `runc kill <id> <signal>`; a container that is gone is not an error. */
export async function runcKill(id: string, signal = 'KILL'): Promise<void> {
  try {
    await exec(RUNC, ['kill', id, signal]);
  } catch (err) {
    if (NOT_EXIST.test((err as { stderr?: string }).stderr ?? '')) return;
    throw runcError(`kill ${id}`, err);
  }
}

/** `runc update --cpu-quota`: changes a running container's CFS quota. */
export async function runcUpdateCpuQuota(id: string, quota: string): Promise<void> {
  try {
    await exec(RUNC, ['update', '--cpu-quota', quota, id]);
  } catch (err) {
    throw runcError(`update ${id}`, err);
  }
}

/** `runc pause`: freezes every process of the container (cgroup freezer). */
export async function runcPause(id: string): Promise<void> {
  try {
    await exec(RUNC, ['pause', id]);
  } catch (err) {
    throw runcError(`pause ${id}`, err);
  }
}

/** `runc resume`: thaws a paused container. */
export async function runcResume(id: string): Promise<void> {
  try {
    await exec(RUNC, ['resume', id]);
  } catch (err) {
    throw runcError(`resume ${id}`, err);
  }
}

/** `runc update` of memory (memory = memory+swap) and/or CFS quota and pids. */
export async function runcUpdate(id: string, limits: { memoryBytes?: number; cpuQuota?: number; pids?: number }): Promise<void> {
  const args = ['update'];
  if (limits.memoryBytes !== undefined) args.push('--memory', String(limits.memoryBytes), '--memory-swap', String(limits.memoryBytes));
  if (limits.cpuQuota !== undefined) args.push('--cpu-quota', String(limits.cpuQuota));
  if (limits.pids !== undefined) args.push('--pids-limit', String(limits.pids));
  try {
    await exec(RUNC, [...args, id]);
  } catch (err) {
    throw runcError(`update ${id}`, err);
  }
}

export interface RuncContainer {
  id: string;
  pid: number;
  status: string;
  bundle: string;
}

/** `runc list --format json` (runc prints `null` when there are none). */
export async function runcList(): Promise<RuncContainer[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      const { stdout } = await exec(RUNC, ['list', '--format', 'json'], { maxBuffer: 64 << 20 });
      return (JSON.parse(stdout) as RuncContainer[] | null) ?? [];
    } catch (err) {
      // a container deleted while runc lists makes it fail ("stat /run/runc/<id>: no such file"): ask again
      if (attempt < 5 && /no such file or directory/.test((err as { stderr?: string }).stderr ?? '')) continue;
      throw runcError('list', err);
    }
  }
}

/** `runc state`, or undefined when the container does not exist. */
export async function runcState(id: string): Promise<RuncContainer | undefined> {
  try {
    const { stdout } = await exec(RUNC, ['state', id]);
    return JSON.parse(stdout) as RuncContainer;
  } catch (err) {
    if (NOT_EXIST.test((err as { stderr?: string }).stderr ?? '')) return undefined;
    throw runcError(`state ${id}`, err);
  }
}
