import { and, eq } from 'drizzle-orm';
import { schema, type Db } from '@hearth/core/db';
import type { InvokeJob } from '@hearth/core';

const { functions, versions } = schema;

/** A function's current version, in the shape an invoke job pins. */
export type CurrentFunction = InvokeJob['function'];

/**
 * Reads which version of each function is current. Triggers run the current version at the
 * time the event is handled, so a redeploy changes what a queue or a cron tick calls at once.
 */
export class FunctionCatalog {
  constructor(private readonly db: Db) {}

  async list(): Promise<CurrentFunction[]> {
    const rows = await this.query().orderBy(functions.name);
    return rows.map(toCurrent);
  }

  async get(name: string): Promise<CurrentFunction | undefined> {
    const rows = await this.query().where(eq(functions.name, name)).limit(1);
    return rows[0] && toCurrent(rows[0]);
  }

  private query() {
    return this.db
      .select({ name: functions.name, version: versions.version, imageRef: versions.imageRef, imageDigest: versions.imageDigest, spec: versions.spec })
      .from(functions)
      .innerJoin(versions, and(eq(versions.functionName, functions.name), eq(versions.version, functions.currentVersion)))
      .$dynamic();
  }
}

function toCurrent(row: CurrentFunction): CurrentFunction {
  return { name: row.name, version: row.version, imageRef: row.imageRef, imageDigest: row.imageDigest, spec: row.spec };
}
