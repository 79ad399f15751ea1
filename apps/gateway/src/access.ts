import { loadSecretBox, type HearthConfig, type SecretBox } from '@hearth/core';
import { openDatabase, type Db } from '@hearth/core/db';
import { ApiKeyStore } from './auth/api-keys.ts';
import { ensureAdminKey } from './auth/admin-key.ts';
import { SecretStore } from './secret-store.ts';

/** API keys and secrets for the gateway: what createApp needs to guard routes and keep secrets. */
export interface Access {
  home: string;
  keys: ApiKeyStore;
  secrets: SecretStore;
  /** Settles when `<home>/admin.key` holds a live key (rejects when it could not be made). */
  adminKey: Promise<string>;
  close(): Promise<void>;
}

/**
 * Opens access control on `db` (or on a pool of its own from config.databaseUrl) and starts
 * making sure the local admin key exists. main.ts should `await access.adminKey` before it
 * listens, so that a CLI started right after finds the key.
 */
export function openAccess(config: HearthConfig, db?: Db, env: NodeJS.ProcessEnv = process.env): Access {
  const own = db ? undefined : openDatabase(config.databaseUrl);
  const database = db ?? own!.db;
  const keys = new ApiKeyStore(database);
  let box: Promise<SecretBox> | undefined;
  // The box is made on first use: a bad HEARTH_SECRETS_KEY fails secret requests with its reason, not the gateway.
  const secrets = new SecretStore(database, () => (box ??= loadSecretBox(config.home, env)));
  const adminKey = ensureAdminKey(keys, config.home).then(
    ({ path, created }) => {
      console.log(`gateway: local admin key ${created ? 'created in' : 'in'} ${path}`);
      return path;
    },
    (err: unknown) => {
      console.error(`gateway: could not make the local admin key in ${config.home}: ${(err as Error).message}`);
      throw err;
    },
  );
  // Callers that never await it must not crash the process with an unhandled rejection.
  adminKey.catch(() => {});
  return { home: config.home, keys, secrets, adminKey, close: async () => void (await own?.close()) };
}
