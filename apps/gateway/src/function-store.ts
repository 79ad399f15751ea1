import { and, desc, eq, sql } from 'drizzle-orm';
import { schema, type Db } from '@hearth/core/db';
import { HearthError, parseFunctionSpec, type FunctionSpec } from '@hearth/core';

const { functions, versions, invocations, secrets } = schema;

/** A function as callers see it: its current version's image and spec. */
export interface FunctionRecord {
  name: string;
  version: number;
  imageRef: string;
  imageDigest: string;
  spec: FunctionSpec;
  createdAt: Date;
  updatedAt: Date;
}

/** The part of a job that names what to run: a version pinned by digest, with its spec. */
export function jobFunction(fn: FunctionRecord) {
  return { name: fn.name, version: fn.version, imageRef: fn.imageRef, imageDigest: fn.imageDigest, spec: fn.spec };
}

const DIGEST_REF = /^(?<repo>[^@\s]+)@(?<digest>sha256:[a-f0-9]{64})$/;

/** Splits `registry/repo[:tag]@sha256:…`; deploys pin images by digest so a call never runs stale code. */
export function parsePinnedImage(image: unknown): { imageRef: string; imageDigest: string } {
  if (typeof image !== 'string') throw new HearthError('INVALID_ARGUMENT', 'image: required, as "registry/repository@sha256:<64 hex>"');
  const m = DIGEST_REF.exec(image);
  if (!m?.groups) throw new HearthError('INVALID_ARGUMENT', `image: "${image}" is not pinned by digest; expected "registry/repository@sha256:<64 hex>"`);
  return { imageRef: m.groups.repo!, imageDigest: m.groups.digest! };
}

/** Postgres-backed functions and versions. */
export class FunctionStore {
  constructor(private readonly db: Db) {}

  async get(name: string): Promise<FunctionRecord | undefined> {
    const rows = await this.db
      .select()
      .from(functions)
      .innerJoin(versions, and(eq(versions.functionName, functions.name), eq(versions.version, functions.currentVersion)))
      .where(eq(functions.name, name))
      .limit(1);
    const row = rows[0];
    return row && toRecord(row.functions, row.versions);
  }

  async require(name: string): Promise<FunctionRecord> {
    const fn = await this.get(name);
    if (!fn) throw new HearthError('NOT_FOUND', `function "${name}" not found`);
    return fn;
  }

  async list(): Promise<FunctionRecord[]> {
    const rows = await this.db
      .select()
      .from(functions)
      .innerJoin(versions, and(eq(versions.functionName, functions.name), eq(versions.version, functions.currentVersion)))
      .orderBy(functions.name);
    return rows.map((r) => toRecord(r.functions, r.versions));
  }

  async versions(name: string) {
    return this.db.select().from(versions).where(eq(versions.functionName, name)).orderBy(desc(versions.version));
  }

  /**
   * Adds a version and makes it current, creating the function when `create` allows it.
   * Runs in one transaction with a row lock so two deploys of one function get distinct versions.
   */
  async deploy(
    input: { image: unknown; spec: unknown; name?: string },
    mode: 'create' | 'upsert',
  ): Promise<{ record: FunctionRecord; created: boolean }> {
    const spec = parseFunctionSpec(input.spec, 'spec');
    if (input.name !== undefined && spec.name !== input.name) {
      throw new HearthError('INVALID_ARGUMENT', `spec.name "${spec.name}" does not match the URL's function name "${input.name}"`);
    }
    const { imageRef, imageDigest } = parsePinnedImage(input.image);
    return this.db.transaction(async (tx) => {
      const inserted = await tx.insert(functions).values({ name: spec.name }).onConflictDoNothing().returning();
      const created = inserted.length > 0;
      if (!created && mode === 'create') {
        throw new HearthError('CONFLICT', `function "${spec.name}" already exists; use PUT /system/functions/${spec.name} to deploy a new version`);
      }
      await tx.execute(sql`select 1 from ${functions} where ${functions.name} = ${spec.name} for update`);
      const [last] = await tx
        .select({ v: sql<number>`coalesce(max(${versions.version}), 0)` })
        .from(versions)
        .where(eq(versions.functionName, spec.name));
      const version = Number(last?.v ?? 0) + 1;
      const [v] = await tx.insert(versions).values({ functionName: spec.name, version, imageRef, imageDigest, spec }).returning();
      const [f] = await tx
        .update(functions)
        .set({ currentVersion: version, updatedAt: new Date() })
        .where(eq(functions.name, spec.name))
        .returning();
      return { record: toRecord(f!, v!), created };
    });
  }

  /** Deletes the function, its versions and its secrets (which have no foreign key: they may predate the first deploy). */
  async delete(name: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      const deleted = await tx.delete(functions).where(eq(functions.name, name)).returning();
      if (deleted.length === 0) throw new HearthError('NOT_FOUND', `function "${name}" not found`);
      await tx.delete(secrets).where(eq(secrets.functionName, name));
    });
  }

  async invocations(name: string, limit: number) {
    return this.db
      .select()
      .from(invocations)
      .where(eq(invocations.functionName, name))
      .orderBy(desc(invocations.createdAt))
      .limit(limit);
  }
}

function toRecord(f: typeof functions.$inferSelect, v: typeof versions.$inferSelect): FunctionRecord {
  return {
    name: f.name,
    version: v.version,
    imageRef: v.imageRef,
    imageDigest: v.imageDigest,
    spec: v.spec,
    createdAt: f.createdAt,
    updatedAt: f.updatedAt,
  };
}
