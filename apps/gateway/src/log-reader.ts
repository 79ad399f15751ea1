import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Reads what functions printed. Workers write one file per instance under
 * `<home>/logs/<function>/<instance>.log`; the gateway shares that home on one machine.
 */
export class LogReader {
  constructor(private readonly home: string) {}

  async tail(name: string, lines: number): Promise<string> {
    const dir = path.join(this.home, 'logs', name);
    let files: string[];
    try {
      files = await fs.readdir(dir);
    } catch {
      return '';
    }
    const stats = await Promise.all(
      files.filter((f) => f.endsWith('.log')).map(async (f) => ({ f, mtime: (await fs.stat(path.join(dir, f))).mtimeMs })),
    );
    stats.sort((a, b) => a.mtime - b.mtime);
    const out: string[] = [];
    // Newest files last; read from the newest backwards until enough lines are collected.
    for (let i = stats.length - 1; i >= 0 && out.length < lines; i--) {
      const text = await fs.readFile(path.join(dir, stats[i]!.f), 'utf8');
      const fileLines = text.split('\n');
      if (fileLines.at(-1) === '') fileLines.pop();
      out.unshift(...fileLines.slice(Math.max(0, fileLines.length - (lines - out.length))));
    }
    return out.length ? out.join('\n') + '\n' : '';
  }
}
