/**
 * Crash recovery for microVMs: a worker that died leaves qemu processes and instance
 * folders behind. They are found by the instance folder in qemu's command line.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HearthError } from '@hearth/core';

/** Pids of live qemu processes whose command line names `<home>/instances/<prefix>…`. */
export async function qemuProcessesUnder(home: string, prefix: string): Promise<Array<{ pid: number; id: string }>> {
  const marker = `${path.join(path.resolve(home), 'instances')}/`;
  const found: Array<{ pid: number; id: string }> = [];
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await fs.readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.startsWith('qemu-system-')) continue;
    for (const arg of cmdline.split('\0')) {
      const at = arg.indexOf(marker + prefix);
      if (at < 0) continue;
      const id = arg.slice(at + marker.length).split('/')[0]!;
      const stat = await fs.readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
      if (stat && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z') found.push({ pid: Number(name), id });
      break;
    }
  }
  return found;
}

/**
 * Kills the qemu processes and removes the instance folders whose id starts with prefix.
 * Returns the ids it removed. Throws INVALID_ARGUMENT for an empty prefix.
 */
export async function cleanupVmInstances(home: string, prefix: string): Promise<string[]> {
  if (!prefix) throw new HearthError('INVALID_ARGUMENT', 'cleanupVmInstances needs a non-empty id prefix');
  const ids = new Set<string>();
  const procs = await qemuProcessesUnder(home, prefix);
  for (const { pid, id } of procs) {
    ids.add(id);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (let i = 0; i < 200 && (await qemuProcessesUnder(home, prefix)).length > 0; i++) await sleep(10);
  const instances = path.join(path.resolve(home), 'instances');
  for (const id of await fs.readdir(instances).catch(() => [] as string[])) {
    if (!id.startsWith(prefix)) continue;
    // a runc instance has a bundle; leave those to cleanupInstances
    if (await fs.access(path.join(instances, id, 'bundle')).then(() => true, () => false)) continue;
    ids.add(id);
    await fs.rm(path.join(instances, id), { recursive: true, force: true });
  }
  return [...ids];
}
