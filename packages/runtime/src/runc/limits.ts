/**
 * Changing a running container's limits: cgroup v1 files written directly (no exec), with
 * `runc update` as the fallback (cgroup v2, or a write the kernel refuses in that order).
 */
import fs from 'node:fs/promises';
import { cpuQuota } from './bundle-spec.ts';
import { runcUpdate } from './runc.ts';

export interface LimitChange {
  memoryMb?: number;
  /** Cores, as a CFS quota. */
  cpu?: number;
  pids?: number;
}

const v1 = (controller: string, id: string, file: string) => `/sys/fs/cgroup/${controller}/hearth/${id}/${file}`;

/** Applies `change`; throws HearthError UNAVAILABLE (from runc) when neither way works. */
export async function updateLimits(id: string, change: LimitChange): Promise<void> {
  try {
    await writeV1(id, change);
  } catch {
    await runcUpdate(id, {
      ...(change.memoryMb !== undefined ? { memoryBytes: memoryBytes(change.memoryMb) } : {}),
      ...(change.cpu !== undefined ? { cpuQuota: cpuQuota(change.cpu) } : {}),
      ...(change.pids !== undefined ? { pids: change.pids } : {}),
    });
  }
}

function memoryBytes(mb: number): number {
  return Math.round(mb * 1024 * 1024);
}

async function writeV1(id: string, change: LimitChange): Promise<void> {
  if (change.memoryMb !== undefined) {
    const bytes = String(memoryBytes(change.memoryMb));
    const mem = v1('memory', id, 'memory.limit_in_bytes');
    const memsw = v1('memory', id, 'memory.memsw.limit_in_bytes');
    const hasSwap = await fs.access(memsw).then(() => true, () => false);
    const current = Number((await fs.readFile(mem, 'utf8')).trim());
    // memsw may never be below memory: raise memsw first, lower memory first
    const order = Number(bytes) >= current ? [memsw, mem] : [mem, memsw];
    for (const file of order) if (file === mem || hasSwap) await fs.writeFile(file, bytes);
  }
  if (change.cpu !== undefined) await fs.writeFile(v1('cpu', id, 'cpu.cfs_quota_us'), String(cpuQuota(change.cpu)));
  if (change.pids !== undefined) await fs.writeFile(v1('pids', id, 'pids.max'), String(change.pids));
}
