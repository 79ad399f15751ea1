import { eq, sql } from 'drizzle-orm';
import { HearthError } from '@hearth/core';
import { schema, type Db } from '@hearth/core/db';

export interface ScaleChange {
  minWarm?: number;
  maxInstances?: number;
}

const count = (name: string, value: unknown, min: number): number | undefined => {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 1000) {
    throw new HearthError('INVALID_ARGUMENT', `${name}: must be a whole number from ${min} to 1000, got ${JSON.stringify(value)}`);
  }
  return value;
};

/** Reads `{ minWarm?, maxInstances? }` from a request body, naming a bad field. */
export function parseScaleChange(body: unknown): ScaleChange {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new HearthError('INVALID_ARGUMENT', 'request body must be a JSON object: { "minWarm": N, "maxInstances": M }');
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => k !== 'minWarm' && k !== 'maxInstances');
  if (unknown.length > 0) throw new HearthError('INVALID_ARGUMENT', `${unknown[0]}: unknown field; use minWarm and maxInstances`);
  const minWarm = count('minWarm', b.minWarm, 0);
  const maxInstances = count('maxInstances', b.maxInstances, 1);
  if (minWarm === undefined && maxInstances === undefined) throw new HearthError('INVALID_ARGUMENT', 'give minWarm, maxInstances or both');
  return { ...(minWarm !== undefined ? { minWarm } : {}), ...(maxInstances !== undefined ? { maxInstances } : {}) };
}

/** `hearth scale`: per-function overrides of the spec's scale, kept across deploys. */
export class ScaleStore {
  constructor(private readonly db: Db) {}

  async get(functionName: string): Promise<{ minWarm: number | null; maxInstances: number | null } | undefined> {
    const rows = await this.db.select().from(schema.functionScale).where(eq(schema.functionScale.functionName, functionName));
    return rows[0] && { minWarm: rows[0].minWarm, maxInstances: rows[0].maxInstances };
  }

  /** Merges the change into the function's override; the caller checked the function exists. */
  async set(functionName: string, change: ScaleChange): Promise<void> {
    const { functionScale } = schema;
    await this.db
      .insert(functionScale)
      .values({ functionName, minWarm: change.minWarm ?? null, maxInstances: change.maxInstances ?? null })
      .onConflictDoUpdate({
        target: functionScale.functionName,
        set: {
          ...(change.minWarm !== undefined ? { minWarm: change.minWarm } : {}),
          ...(change.maxInstances !== undefined ? { maxInstances: change.maxInstances } : {}),
          updatedAt: sql`now()`,
        },
      });
  }
}
