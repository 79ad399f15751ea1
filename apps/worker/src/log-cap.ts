import { statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';

/** What stays of a log that passed its cap: the newest output, in `<log>.1`. */
const KEEP_BYTES = 1024 * 1024;

/**
 * Keeps an instance's log under `maxBytes` on the host: runc's container writes to the file
 * directly (O_APPEND), so nothing else limits it. Past the cap, the newest megabyte moves to
 * `<log>.1` and the log starts again with a line saying so. Cheap when under the cap: one stat,
 * made synchronously: it runs after every call, and through libuv's thread pool it cost the
 * worker more CPU (a thread hand-off each way) than the syscall itself, ~8% of its time
 * under a steady queue (bench/queue-throughput.ts).
 */
export async function capLog(logPath: string, maxBytes: number): Promise<void> {
  const size = statSync(logPath, { throwIfNoEntry: false })?.size ?? 0;
  if (size <= maxBytes) return;
  const handle = await fs.open(logPath, 'r');
  try {
    const keep = Math.min(KEEP_BYTES, size);
    const tail = Buffer.alloc(keep);
    await handle.read(tail, 0, keep, size - keep);
    await fs.writeFile(`${logPath}.1`, tail);
  } finally {
    await handle.close();
  }
  // Writers append, so after the truncate their next line lands at the new end.
  await fs.truncate(logPath, 0);
  const mb = (maxBytes / 1024 / 1024).toFixed(0);
  await fs.appendFile(logPath, `[hearth] this instance's log passed ${mb} MB: older output was dropped; the last 1 MB of it is in ${path.basename(logPath)}.1\n`);
}
