import fs from 'node:fs';
import path from 'node:path';

/** Where test files live; `*` is one path segment, `**` any number of folders. */
export const TEST_FILE_PATTERNS = [
  'test/**/*.test.ts',
  'packages/*/src/**/*.test.ts',
  'packages/*/test/**/*.test.ts',
  'apps/*/src/**/*.test.ts',
  'apps/*/test/**/*.test.ts',
];

/** All files under `dir` (relative to `root`), skipping node_modules and dot folders. */
function walk(root: string, dir: string): string[] {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  if (fs.statSync(abs).isFile()) return [dir];
  return fs.readdirSync(abs, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) return [];
    const rel = path.join(dir, entry.name);
    return entry.isDirectory() ? walk(root, rel) : [rel];
  });
}

function toRegExp(pattern: string): RegExp {
  const body = pattern
    .split('/')
    .map((part) => (part === '**' ? '(?:[^/]+/)*' : `${part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replaceAll('*', '[^/]*')}/`))
    .join('')
    .replace(/\/$/, '');
  return new RegExp(`^${body}$`);
}

/**
 * Test files (relative to `root`, sorted) matching the patterns, or the `*.test.ts` files
 * in the files and folders given on the command line (relative to the current directory).
 * Node 20's runner does not expand globs itself.
 */
export function findTestFiles(root: string, selection: string[] = []): string[] {
  const matchers = TEST_FILE_PATTERNS.map(toRegExp);
  const isTest = (file: string) => matchers.some((re) => re.test(file));
  if (selection.length > 0) {
    return selection.flatMap((arg) => {
      const rel = path.relative(root, path.resolve(arg));
      if (!fs.existsSync(path.join(root, rel))) throw new Error(`no such test file or folder: ${arg}`);
      return walk(root, rel).filter((f) => f === rel || f.endsWith('.test.ts'));
    }).sort();
  }
  return ['test', 'packages', 'apps'].flatMap((dir) => walk(root, dir)).filter(isTest).sort();
}
