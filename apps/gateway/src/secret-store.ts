import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { schema, type Db } from '@hearth/core/db';
import { FUNCTION_NAME, HearthError, secretContext, type SecretBox } from '@hearth/core';

const { secrets } = schema;

/** A secret's name: it becomes a file name under /run/secrets, so no "/" and no leading dot. */
export const SECRET_KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
export const SECRET_VALUE_MAX_BYTES = 64 * 1024;
/** More files than this under /run/secrets is a misuse; it also bounds one request's work. */
export const SECRETS_PER_FUNCTION_MAX = 100;

/** What `GET …/secrets` shows: names and times, never values. */
export interface SecretInfo {
  key: string;
  updatedAt: Date;
}

export function checkFunctionName(name: string): void {
  if (!FUNCTION_NAME.test(name)) throw new HearthError('INVALID_ARGUMENT', `function name "${name}" must start with a lowercase letter and hold only a-z, 0-9 and "-" (at most 63 characters)`);
}

/**
 * Turns `{ KEY: "value" | { base64 } }` into bytes per key. Messages name the key and say
 * what is wrong with the value, never what the value is.
 */
export function parseSecretValues(body: unknown): Map<string, Buffer> {
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw new HearthError('INVALID_ARGUMENT', 'request body must be a JSON object: { "KEY": "value", "OTHER": { "base64": "…" } }');
  }
  const entries = Object.entries(body as Record<string, unknown>);
  if (entries.length === 0) throw new HearthError('INVALID_ARGUMENT', 'no secrets given: send { "KEY": "value" }');
  if (entries.length > SECRETS_PER_FUNCTION_MAX) throw new HearthError('INVALID_ARGUMENT', `at most ${SECRETS_PER_FUNCTION_MAX} secrets per function, got ${entries.length}`);
  const values = new Map<string, Buffer>();
  for (const [key, value] of entries) {
    if (!SECRET_KEY.test(key)) {
      throw new HearthError('INVALID_ARGUMENT', `secret name "${key.slice(0, 140)}" must start with a letter or "_" and hold only A-Z, a-z, 0-9, "_", "." or "-" (at most 128 characters)`);
    }
    let bytes: Buffer;
    if (typeof value === 'string') {
      bytes = Buffer.from(value, 'utf8');
    } else if (value && typeof value === 'object' && typeof (value as { base64?: unknown }).base64 === 'string') {
      const b64 = (value as { base64: string }).base64;
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new HearthError('INVALID_ARGUMENT', `secret "${key}": "base64" is not valid base64`);
      bytes = Buffer.from(b64, 'base64');
    } else {
      throw new HearthError('INVALID_ARGUMENT', `secret "${key}": value must be a string or { "base64": "…" }`);
    }
    if (bytes.length > SECRET_VALUE_MAX_BYTES) {
      throw new HearthError('TOO_LARGE', `secret "${key}" is ${bytes.length} bytes; at most ${SECRET_VALUE_MAX_BYTES} bytes (64 KiB)`);
    }
    values.set(key, bytes);
  }
  return values;
}

/** A function's secrets in Postgres, sealed with the SecretBox (AES-256-GCM, bound to function and key). */
export class SecretStore {
  constructor(
    private readonly db: Db,
    private readonly box: () => Promise<SecretBox>,
  ) {}

  /** Adds or replaces the given keys; other keys stay. Refuses to go past the per-function limit. */
  async set(functionName: string, values: Map<string, Buffer>): Promise<SecretInfo[]> {
    checkFunctionName(functionName);
    const box = await this.box();
    const now = new Date();
    const rows = [...values].map(([key, value]) => ({ functionName, key, sealed: box.seal(value, secretContext(functionName, key)), updatedAt: now }));
    await this.db.transaction(async (tx) => {
      await tx.insert(secrets).values(rows).onConflictDoUpdate({
        target: [secrets.functionName, secrets.key],
        set: { sealed: sql`excluded.sealed`, updatedAt: sql`excluded.updated_at` },
      });
      const [count] = await tx.select({ n: sql<number>`count(*)` }).from(secrets).where(eq(secrets.functionName, functionName));
      if (Number(count?.n ?? 0) > SECRETS_PER_FUNCTION_MAX) {
        throw new HearthError('INVALID_ARGUMENT', `function "${functionName}" would have ${count?.n} secrets; at most ${SECRETS_PER_FUNCTION_MAX}`);
      }
    });
    return this.list(functionName, [...values.keys()]);
  }

  async list(functionName: string, only?: string[]): Promise<SecretInfo[]> {
    checkFunctionName(functionName);
    const where = only ? and(eq(secrets.functionName, functionName), inArray(secrets.key, only)) : eq(secrets.functionName, functionName);
    return this.db.select({ key: secrets.key, updatedAt: secrets.updatedAt }).from(secrets).where(where).orderBy(asc(secrets.key));
  }

  async delete(functionName: string, key: string): Promise<void> {
    checkFunctionName(functionName);
    const deleted = await this.db
      .delete(secrets)
      .where(and(eq(secrets.functionName, functionName), eq(secrets.key, key)))
      .returning({ key: secrets.key });
    if (deleted.length === 0) throw new HearthError('NOT_FOUND', `function "${functionName}" has no secret "${key.slice(0, 140)}"`);
  }
}
