import { eq } from 'drizzle-orm';
import { schema, type Db } from '@hearth/core/db';
import { HearthError, loadConfig, loadSecretBox, secretContext, type SecretBox } from '@hearth/core';

const boxes = new Map<string, Promise<SecretBox>>();

/** The SecretBox for a home, loaded once per process (HEARTH_SECRETS_KEY or `<home>/secrets.key`). */
function boxFor(home: string): Promise<SecretBox> {
  let box = boxes.get(home);
  if (!box) {
    box = loadSecretBox(home);
    // A failed load is retried next time, not cached.
    box.catch(() => boxes.delete(home));
    boxes.set(home, box);
  }
  return box;
}

/**
 * A function's secrets, opened: file name under /run/secrets → contents. Read at instance
 * start; the runtime mounts them read-only. A value that does not authenticate (tampered
 * with, or another secrets key) fails the start with a message that names the key, never
 * the value.
 */
export async function readSecrets(db: Db, functionName: string, box?: SecretBox): Promise<Record<string, Buffer>> {
  const rows = await db
    .select({ key: schema.secrets.key, sealed: schema.secrets.sealed })
    .from(schema.secrets)
    .where(eq(schema.secrets.functionName, functionName));
  if (rows.length === 0) return {};
  const opener = box ?? (await boxFor(loadConfig().home));
  const out: Record<string, Buffer> = {};
  for (const row of rows) {
    try {
      out[row.key] = opener.open(row.sealed, secretContext(functionName, row.key));
    } catch (err) {
      throw new HearthError('INTERNAL', `secret "${row.key}" of function "${functionName}" cannot be opened: ${(err as Error).message}`, { cause: err });
    }
  }
  return out;
}
