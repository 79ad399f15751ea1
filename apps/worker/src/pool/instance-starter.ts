import fs from 'node:fs/promises';
import path from 'node:path';
import { isHearthError, type HearthConfig } from '@hearth/core';
import { createRuncSandbox, createVmSandbox, loadVmKernel, type Sandbox } from '@hearth/runtime';
import type { ImageCache } from '../image-cache.ts';
import type { StartInstance } from './instance-pool.ts';
import type { PoolTarget } from './instance.ts';
import { stemCellLogPath, type StemCellPool } from './stem-cells.ts';

export interface InstanceStarterDeps {
  config: HearthConfig;
  images: ImageCache;
  stemCells?: StemCellPool;
  /** The function's secrets, mounted at /run/secrets. */
  readSecrets?: (functionName: string) => Promise<Record<string, Buffer>>;
}

const logPathOf = (config: HearthConfig, fn: string, id: string) => path.join(config.home, 'logs', fn, `${id}.log`);

/** `KEY=value` lines of an image config, as a map. */
function envMap(lines: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of lines ?? []) {
    const at = line.indexOf('=');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

/**
 * Starts an instance for a pool: a stem cell specialized into the function when one is ready
 * and the image qualifies, else a new sandbox (a cold start).
 */
export function createInstanceStarter(deps: InstanceStarterDeps): StartInstance {
  const { config, images, stemCells, readSecrets } = deps;

  return async (target: PoolTarget, id: string) => {
    const fn = target.fn;
    const [image, secrets] = await Promise.all([images.prepare(fn.imageRef, fn.imageDigest), readSecrets?.(fn.name) ?? Promise.resolve({})]);
    const env = { ...fn.spec.env, HEARTH_FUNCTION: fn.name, HEARTH_VERSION: String(fn.version) };
    const limits = { memoryMb: fn.spec.memoryMb, cpu: fn.spec.cpu, pids: fn.spec.pids };
    const withSecrets = Object.keys(secrets).length > 0 ? { secrets } : {};

    // a stem cell has no network interface: a function with egress cold-starts
    const cell = fn.spec.isolation === 'container' && !fn.spec.egress ? stemCells?.take(fn.spec.runtime, image) : undefined;
    if (cell) {
      const { sandbox, functionLayers } = cell;
      let specialized: { mountMs: number; loadMs: number } | undefined;
      try {
        specialized = await sandbox.specialize({ functionLayers, env: { ...envMap(image.config.Env), ...env }, limits, ...withSecrets });
      } catch (err) {
        void sandbox.stop().catch(() => undefined);
        // Layers a stem cell cannot take (files outside /function): a cold start can. Any
        // other failure (the handler does not load) would fail a cold start the same way.
        if (!isHearthError(err, 'INVALID_ARGUMENT')) throw err;
      }
      if (specialized) {
        // From now on the cell's output is the function's: `hearth logs` reads <logs>/<fn>/.
        await linkLog(stemCellLogPath(config, sandbox.id), logPathOf(config, fn.name, sandbox.id));
        return { sandbox, startKind: 'stemcell' as const, specialize: specialized, logPath: logPathOf(config, fn.name, sandbox.id) };
      }
    }

    const options = { home: config.home, id, layers: image.layers, imageConfig: image.config, limits, env, logPath: logPathOf(config, fn.name, id), ...withSecrets };
    const sandbox: Sandbox =
      fn.spec.isolation === 'vm'
        ? createVmSandbox({ ...options, kernel: await loadVmKernel(config.vmHome) })
        : createRuncSandbox({ ...options, network: { egress: fn.spec.egress === true } });
    try {
      await sandbox.start();
    } catch (err) {
      await sandbox.stop().catch(() => undefined);
      throw err;
    }
    return { sandbox, startKind: 'cold' as const, logPath: options.logPath };
  };
}

/** A second name for the same file: the sandbox keeps writing and reading (for error tails) its own. */
async function linkLog(from: string, to: string): Promise<void> {
  try {
    await fs.mkdir(path.dirname(to), { recursive: true });
    await fs.link(from, to);
  } catch {
    // Logs are a convenience: the call does not fail for them.
  }
}
