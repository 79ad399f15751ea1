import fs from 'node:fs/promises';
import path from 'node:path';
import { HearthError } from '@hearth/core';
import { runcDeleteForce, runcList } from './runc/runc.ts';
import { unmount } from './runc/overlay.ts';
import { freezerStatePath } from './runc/freezer.ts';
import { cleanupEgressNetworks } from './runc/netns.ts';

/**
 * Removes containers, mounts, instance folders and egress networks (namespace
 * `hearth-<id>` and its veth) whose id starts with `prefix`: what a killed worker left
 * behind. Run at worker start and by tests.
 */
export async function cleanupInstances(home: string, prefix: string): Promise<string[]> {
  // an empty prefix would take every container on the machine with it
  if (!prefix) throw new HearthError('INVALID_ARGUMENT', 'cleanupInstances needs a non-empty id prefix');
  const removed = new Set<string>();
  for (const c of await runcList()) {
    if (c.id.startsWith(prefix)) {
      // a paused container's processes die only once thawed
      if (c.status === 'paused') await fs.writeFile(freezerStatePath(c.id), 'THAWED').catch(() => undefined);
      await runcDeleteForce(c.id);
      removed.add(c.id);
    }
  }
  const dir = path.join(path.resolve(home), 'instances');
  const entries = await fs.readdir(dir).catch(() => [] as string[]);
  for (const id of entries.filter((e) => e.startsWith(prefix))) {
    await unmount(path.join(dir, id));
    await fs.rm(path.join(dir, id), { recursive: true, force: true });
    removed.add(id);
  }
  // after the containers: a namespace is freed once no process is left in it
  for (const name of await cleanupEgressNetworks(prefix)) {
    if (name.startsWith('hearth-')) removed.add(name.slice('hearth-'.length));
  }
  return [...removed];
}
