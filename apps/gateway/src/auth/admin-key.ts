import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ApiKeyStore } from './api-keys.ts';

/** The local admin key's file in HEARTH_HOME; the CLI on the same machine reads it (apps/cli/src/credentials.ts). */
export const ADMIN_KEY_FILE = 'admin.key';

export const adminKeyPath = (home: string): string => path.join(home, ADMIN_KEY_FILE);

/**
 * Makes sure `<home>/admin.key` holds a live admin key, so that the CLI on this machine
 * works with no setup: keeps the one there if Postgres knows it and it is not revoked,
 * else creates one, stores its hash and writes the plain key (mode 0600). Returns the path.
 */
export async function ensureAdminKey(keys: ApiKeyStore, home: string): Promise<{ path: string; created: boolean }> {
  const file = adminKeyPath(home);
  const existing = await fs.readFile(file, 'utf8').then((t) => t.trim(), () => '');
  if (existing && (await keys.isLive(existing))) return { path: file, created: false };
  const { key } = await keys.create(`local admin (${os.hostname()}:${home})`.slice(0, 100), 'admin');
  await fs.mkdir(home, { recursive: true });
  // Written aside and renamed: a CLI reading at the same moment sees the old key or the new one.
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(tmp, `${key}\n`, { mode: 0o600, flag: 'wx' });
  await fs.rename(tmp, file);
  return { path: file, created: true };
}
