import fs from 'node:fs/promises';
import path from 'node:path';
import { HearthError, invalidArgument, parseFunctionSpecYaml, type FunctionSpec } from '@hearth/core';

export const SPEC_FILE = 'hearth.yaml';

/** A function folder on disk: its `hearth.yaml`, parsed, and where things are. */
export interface Project {
  /** Absolute path of the folder. */
  dir: string;
  /** The folder as the user should see it in messages: relative to cwd, with a trailing '/'. */
  displayDir: string;
  /** `hello/hearth.yaml`, for messages. */
  specDisplay: string;
  spec: FunctionSpec;
  /** Absolute path of the handler file; undefined for `runtime: image`. */
  handlerPath?: string;
}

/** `hello/` for messages; `./` for the current folder. */
export function displayPath(abs: string, cwd = process.cwd()): string {
  const rel = path.relative(cwd, abs);
  if (rel === '') return './';
  const shown = rel.startsWith('..') || path.isAbsolute(rel) ? abs : rel;
  return `${shown}/`;
}

/**
 * Finds and reads a function folder. `dirOrName` is a folder path, or a function name when
 * a folder of that name exists in cwd (the same thing, spelled the way users type it).
 * Checks what the gateway would reject later anyway, so the user hears it before a push:
 * the spec (naming the bad field) and that the handler exists inside the folder.
 */
export async function loadProject(dirOrName: string, cwd = process.cwd()): Promise<Project> {
  const dir = path.resolve(cwd, dirOrName);
  const displayDir = displayPath(dir, cwd);
  const specDisplay = `${displayDir === './' ? '' : displayDir}${SPEC_FILE}`;

  const dirStat = await fs.stat(dir).catch(() => undefined);
  if (!dirStat) throw new HearthError('NOT_FOUND', `no function folder ${JSON.stringify(dirOrName)} here; create one with: hearth init ${dirOrName}`);
  if (!dirStat.isDirectory()) throw invalidArgument(`${displayDir.replace(/\/$/, '')} is not a folder; pass the folder that holds ${SPEC_FILE}`);

  let text: string;
  try {
    text = await fs.readFile(path.join(dir, SPEC_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new HearthError('NOT_FOUND', `${specDisplay} not found; is ${displayDir} a function folder? (create one with: hearth init NAME)`);
    }
    throw err;
  }
  const spec = parseFunctionSpecYaml(text, specDisplay);

  if (spec.runtime === 'image') return { dir, displayDir, specDisplay, spec };

  // parseFunctionSpec guarantees a handler for every runtime but `image`.
  const handler = spec.handler as string;
  const handlerPath = path.resolve(dir, handler);
  const inside = path.relative(dir, handlerPath);
  if (inside === '' || inside.startsWith('..') || path.isAbsolute(inside)) {
    throw invalidArgument(`${specDisplay}: handler ${JSON.stringify(handler)} must be a file inside ${displayDir}`);
  }
  const handlerStat = await fs.stat(handlerPath).catch(() => undefined);
  if (!handlerStat || !handlerStat.isFile()) {
    throw invalidArgument(`${specDisplay}: handler ${JSON.stringify(handler)} not found in ${displayDir}`);
  }
  if (spec.runtime === 'exec' && (handlerStat.mode & 0o111) === 0) {
    throw invalidArgument(`${specDisplay}: handler ${JSON.stringify(handler)} is not executable; run: chmod +x ${path.join(displayDir, handler)}`);
  }
  return { dir, displayDir, specDisplay, spec, handlerPath };
}
