import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensurePostgres } from './postgres.ts';
import { ensureRedis } from './redis.ts';
import { ensureRegistry } from './registry.ts';
import type { LocalService } from './service.ts';

export type { LocalService } from './service.ts';
export { DEFAULT_REDIS_URL, pingRedis } from './redis.ts';
export { DEFAULT_DATABASE_URL, pingPostgres } from './postgres.ts';
export { DEFAULT_REGISTRY, pingRegistry } from './registry.ts';

/** The repository root (this file is infra/services/index.ts). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface StartServicesOptions {
  /** Defaults to HEARTH_HOME, else <repo>/.hearth. */
  home?: string;
  /** Where REDIS_URL, DATABASE_URL and HEARTH_REGISTRY are read; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Progress lines; defaults to stderr with a "hearth: " prefix. */
  log?: (line: string) => void;
}

export interface Services {
  /** HEARTH_HOME, REDIS_URL, DATABASE_URL and HEARTH_REGISTRY for the apps and tests. */
  env: Record<string, string>;
  services: LocalService[];
  /** Stops, in reverse order, only the servers this call started. May be called twice. */
  stop(): Promise<void>;
}

/**
 * Makes sure Redis, Postgres and the registry answer, starting on loopback whichever does
 * not, with data under HEARTH_HOME. A service that already answers (at its env var's
 * address, or on the default port) is reused and left running by stop().
 */
export async function startServices(opts: StartServicesOptions = {}): Promise<Services> {
  const env = opts.env ?? process.env;
  const home = path.resolve(opts.home ?? (env.HEARTH_HOME || path.join(REPO_ROOT, '.hearth')));
  const log = opts.log ?? ((line: string) => process.stderr.write(`hearth: ${line}\n`));
  fs.mkdirSync(home, { recursive: true });

  const results = await Promise.allSettled([ensureRedis, ensurePostgres, ensureRegistry].map((ensure) => ensure({ home, env, log })));
  const services = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const stop = async () => {
    for (const service of [...services].reverse()) {
      await service.stop().catch((err: unknown) => log(`${service.name}: stop failed: ${(err as Error).message}`));
    }
  };
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
  if (failures.length > 0) {
    await stop();
    throw new Error(failures.map((err) => err.message).join('\n'));
  }
  return {
    env: Object.assign({ HEARTH_HOME: home }, ...services.map((s) => s.env)) as Record<string, string>,
    services,
    stop,
  };
}
