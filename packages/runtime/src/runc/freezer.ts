/**
 * Freezing a container: an idle instance keeps its memory but uses no CPU (as OpenWhisk
 * does with `runc pause`). The cgroup v1 freezer file is written directly, which saves an
 * exec of runc; `runc pause`/`resume` is the fallback (cgroup v2, or no freezer hierarchy).
 */
import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { HearthError } from '@hearth/core';
import { runcPause, runcResume } from './runc.ts';

/** How long a freeze may take to settle before runc is asked instead. */
const SETTLE_MS = 2000;

export function freezerStatePath(id: string): string {
  return `/sys/fs/cgroup/freezer/hearth/${id}/freezer.state`;
}

/** FROZEN, FREEZING or THAWED; undefined without a v1 freezer cgroup. */
export async function freezerState(id: string): Promise<string | undefined> {
  return (await fs.readFile(freezerStatePath(id), 'utf8').catch(() => undefined))?.trim();
}

/**
 * Sets the freezer to `state` and waits until it reads back (FREEZING settles into FROZEN
 * once every task has stopped). Falls back to `runc pause|resume` when the file is missing
 * or the state does not settle.
 */
export async function setFrozen(id: string, frozen: boolean): Promise<void> {
  const want = frozen ? 'FROZEN' : 'THAWED';
  const file = freezerStatePath(id);
  let written = false;
  try {
    await fs.writeFile(file, want);
    written = true;
  } catch {
    // no v1 freezer here: runc knows the cgroup layout
  }
  if (written) {
    const deadline = Date.now() + SETTLE_MS;
    for (let wait = 1; Date.now() < deadline; wait = Math.min(wait * 2, 20)) {
      if ((await freezerState(id)) === want) return;
      await sleep(wait);
    }
  }
  try {
    await (frozen ? runcPause(id) : runcResume(id));
  } catch (err) {
    throw new HearthError('UNAVAILABLE', `cannot ${frozen ? 'pause' : 'resume'} sandbox ${id}: ${(err as Error).message}`, { cause: err });
  }
}
