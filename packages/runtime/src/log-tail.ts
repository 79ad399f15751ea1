import fs from 'node:fs/promises';

/**
 * The last `maxLines` lines the instance wrote to its log since byte `from` (the log may be
 * shared with earlier instances of the same function). For error messages.
 */
export async function readLogTail(logPath: string, from = 0, maxLines = 12, maxBytes = 4096): Promise<string> {
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(logPath, 'r');
    const { size } = await fh.stat();
    const start = Math.max(from, size - maxBytes);
    if (start >= size) return '';
    const buf = Buffer.alloc(size - start);
    await fh.read(buf, 0, buf.length, start);
    const lines = buf.toString('utf8').split('\n').map((l) => l.trimEnd()).filter(Boolean);
    return lines.slice(-maxLines).join('\n');
  } catch {
    return '';
  } finally {
    await fh?.close();
  }
}
