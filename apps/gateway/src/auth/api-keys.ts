import crypto from 'node:crypto';
import { and, desc, eq, isNull, lt, or } from 'drizzle-orm';
import { schema, type Db } from '@hearth/core/db';
import { HearthError } from '@hearth/core';

const { apiKeys } = schema;

/** An API key as `hearth keys ls` shows it: never the key itself, never its hash. */
export interface ApiKeyInfo {
  id: string;
  name: string;
  /** The first characters of the key, enough to tell keys apart; not secret. */
  prefix: string;
  role: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

/**
 * `hk_<id>_<secret>`: the id (12 hex, no "_" so the key splits unambiguously) names the key
 * in `hearth keys revoke`; the secret is 32 random bytes, base64url.
 */
const KEY_FORMAT = /^hk_[a-f0-9]{12}_[A-Za-z0-9_-]{43}$/;
/** last_used_at is a hint for `keys ls`, not an audit log: one write a minute per key is enough. */
const TOUCH_EVERY_MS = 60_000;


/**
 * sha256 of the whole key. A fast hash is right here: keys are 256-bit random tokens, so
 * there is nothing to brute-force the way there is with a password, and every request
 * checks one.
 */
export const hashKey = (key: string): string => crypto.createHash('sha256').update(key, 'utf8').digest('hex');

const toInfo = (row: typeof apiKeys.$inferSelect): ApiKeyInfo => ({
  id: row.id,
  name: row.name,
  prefix: row.prefix,
  role: row.role,
  createdAt: row.createdAt,
  lastUsedAt: row.lastUsedAt,
  revokedAt: row.revokedAt,
});

/** Postgres-backed API keys: only hashes are stored; the plain key is returned once, at create. */
export class ApiKeyStore {
  private readonly touched = new Map<string, number>();

  constructor(private readonly db: Db) {}

  async create(name: string, role = 'admin'): Promise<{ key: string; info: ApiKeyInfo }> {
    const clean = name.trim();
    if (clean === '' || clean.length > 100) throw new HearthError('INVALID_ARGUMENT', `key name must be 1-100 characters, got ${clean.length}`);
    const id = crypto.randomBytes(6).toString('hex');
    const key = `hk_${id}_${crypto.randomBytes(32).toString('base64url')}`;
    const [row] = await this.db
      .insert(apiKeys)
      .values({ id, name: clean, prefix: `hk_${id}`, hash: hashKey(key), role })
      .returning();
    return { key, info: toInfo(row!) };
  }

  async list(): Promise<ApiKeyInfo[]> {
    return (await this.db.select().from(apiKeys).orderBy(desc(apiKeys.createdAt))).map(toInfo);
  }

  /** Revokes by id, prefix (`hk_<id>`) or the whole key. Revoking twice is not an error. */
  async revoke(idOrKey: string): Promise<ApiKeyInfo> {
    const id = /^hk_([a-f0-9]{12})/.exec(idOrKey)?.[1] ?? idOrKey;
    const [row] = await this.db
      .update(apiKeys)
      .set({ revokedAt: new Date() })
      .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
      .returning();
    if (row) return toInfo(row);
    const [existing] = await this.db.select().from(apiKeys).where(eq(apiKeys.id, id)).limit(1);
    if (!existing) throw new HearthError('NOT_FOUND', `API key "${id}" not found; \`hearth keys ls\` lists the ids`);
    return toInfo(existing);
  }

  /** The live key this plain key is, or undefined when it is malformed, unknown or revoked. */
  async verify(key: string): Promise<ApiKeyInfo | undefined> {
    if (!KEY_FORMAT.test(key)) return undefined;
    // The lookup goes by hash through the unique index: no comparison on the secret itself.
    const [row] = await this.db.select().from(apiKeys).where(eq(apiKeys.hash, hashKey(key))).limit(1);
    if (!row || row.revokedAt) return undefined;
    this.touch(row.id);
    return toInfo(row);
  }

  /** Whether the key exists and is not revoked (for the local admin key at start). */
  async isLive(key: string): Promise<boolean> {
    const [row] = await this.db.select({ revokedAt: apiKeys.revokedAt }).from(apiKeys).where(eq(apiKeys.hash, hashKey(key))).limit(1);
    return row !== undefined && row.revokedAt === null;
  }

  private touch(id: string): void {
    const now = Date.now();
    if (now - (this.touched.get(id) ?? 0) < TOUCH_EVERY_MS) return;
    this.touched.set(id, now);
    const before = new Date(now - TOUCH_EVERY_MS);
    // Fire and forget: a failed write of a usage hint must not fail the request.
    void this.db
      .update(apiKeys)
      .set({ lastUsedAt: new Date(now) })
      .where(and(eq(apiKeys.id, id), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, before))))
      .catch((err: unknown) => console.error('[gateway] could not record API key use:', (err as Error).message));
  }
}
