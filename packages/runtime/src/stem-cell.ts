/**
 * Stem cells: generic instances of a base image started before any call, then specialized
 * into one function (as OpenWhisk's prewarmed containers and Fission's pool manager do).
 * A function can use a stem cell of base B when its image is B's layers plus layers of its
 * own that only add files under /function.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { HearthError } from '@hearth/core';

/** The bootstrap's specialization endpoint (only answered before specialization). */
export const SPECIALIZE_PATH = '/_hearth/specialize';

/**
 * The function's own layers (by diff id, lowest first) when its image is the base image plus
 * more layers, else undefined. An image equal to the base has no layers of its own: [].
 */
export function stemCellLayers(baseDiffIds: readonly string[], functionDiffIds: readonly string[]): string[] | undefined {
  if (functionDiffIds.length < baseDiffIds.length) return undefined;
  for (let i = 0; i < baseDiffIds.length; i++) if (functionDiffIds[i] !== baseDiffIds[i]) return undefined;
  return functionDiffIds.slice(baseDiffIds.length);
}

/**
 * The `function/` folders of unpacked layer dirs (lowest first), skipping layers without one.
 * Throws INVALID_ARGUMENT when a function layer holds anything outside /function: a stem
 * cell shows only /function, so such a function needs a cold start.
 */
export async function functionFolders(layers: readonly string[], opts: { onlyFunction: boolean }): Promise<string[]> {
  const out: string[] = [];
  for (const layer of layers) {
    const entries = await fs.readdir(layer).catch((err: NodeJS.ErrnoException) => {
      throw new HearthError('INVALID_ARGUMENT', `layer folder ${layer} is not readable: ${err.code ?? err.message}`);
    });
    const outside = entries.filter((e) => e !== 'function');
    if (opts.onlyFunction && outside.length > 0) {
      throw new HearthError(
        'INVALID_ARGUMENT',
        `layer ${layer} has files outside /function (${outside.slice(0, 3).join(', ')}): a stem cell cannot run this function`,
      );
    }
    if (entries.includes('function') && (await fs.stat(path.join(layer, 'function'))).isDirectory()) out.push(path.join(layer, 'function'));
  }
  return out;
}
