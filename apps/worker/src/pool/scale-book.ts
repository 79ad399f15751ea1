import { schema, type Db } from '@hearth/core/db';
import type { CurrentFunction } from '../function-catalog.ts';
import type { PoolTarget } from './instance.ts';

interface ScaleOverride {
  minWarm: number | null;
  maxInstances: number | null;
}

/** A version's instances are only ever reused for that exact version. */
export const versionKey = (fn: Pick<CurrentFunction, 'name' | 'version' | 'imageDigest'>) => `${fn.name}@${fn.version}:${fn.imageDigest}`;

/**
 * What each version's pool is sized by: the spec it was deployed with, overridden by
 * `hearth scale` (the function_scale table), which needs no new deploy.
 */
export class ScaleBook {
  private overrides = new Map<string, ScaleOverride>();

  constructor(
    private readonly db: Db,
    private readonly defaultIdleTtlSec: number,
  ) {}

  async load(): Promise<void> {
    const rows = await this.db.select().from(schema.functionScale);
    this.overrides = new Map(rows.map((r) => [r.functionName, { minWarm: r.minWarm, maxInstances: r.maxInstances }]));
  }

  target(fn: CurrentFunction): PoolTarget {
    const { spec } = fn;
    const o = this.overrides.get(fn.name);
    const maxInstances = o?.maxInstances ?? spec.scale.maxInstances;
    return {
      key: versionKey(fn),
      fn,
      // A microVM's invoke port is one byte stream: one call at a time.
      concurrency: spec.isolation === 'vm' ? 1 : spec.concurrency,
      minWarm: Math.min(o?.minWarm ?? spec.scale.minWarm, maxInstances),
      maxInstances,
      idleTtlSec: spec.scale.idleTtlSec ?? this.defaultIdleTtlSec,
      memoryMb: spec.memoryMb,
    };
  }
}
