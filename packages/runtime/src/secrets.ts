/**
 * Sandbox secrets: one file per key in a per-instance host folder that the sandbox sees
 * read-only at /run/secrets (the Docker/Kubernetes convention). Files are 0400 and owned by
 * the uid the function runs as, so only the function (and root on the host) can read them.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { HearthError } from '@hearth/core';

/** Where secrets appear inside a sandbox. */
export const SECRETS_DIR = '/run/secrets';

/** A key is a file name: no '/', no leading dot, nothing a shell or a path would read twice. */
const KEY = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export type Secrets = Record<string, string | Buffer>;

/** Throws HearthError INVALID_ARGUMENT naming the first key that is not a safe file name. */
export function validateSecretKeys(secrets: Secrets | undefined): void {
  for (const key of Object.keys(secrets ?? {})) {
    if (!KEY.test(key)) {
      throw new HearthError(
        'INVALID_ARGUMENT',
        `secret name "${key}" is not a safe file name: use letters, digits, '_', '.', '-' (not first), at most 128 characters`,
      );
    }
  }
}

/**
 * The folder itself: 0500, owned by the function's uid, so it can list and read but not
 * write (the mount is read-only too).
 */
export async function createSecretsDir(dir: string, owner: { uid: number; gid: number }): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await fs.chown(dir, owner.uid, owner.gid);
  await fs.chmod(dir, 0o500);
}

/** Writes each secret as `<dir>/<key>` (0400, owned by `owner`); an existing file is replaced. */
export async function writeSecrets(dir: string, secrets: Secrets | undefined, owner: { uid: number; gid: number }): Promise<void> {
  validateSecretKeys(secrets);
  for (const [key, value] of Object.entries(secrets ?? {})) {
    const file = path.join(dir, key);
    // written under a temp name and renamed, so the function never reads half a secret
    const tmp = path.join(dir, `.${key}.tmp`);
    await fs.writeFile(tmp, value, { mode: 0o400 });
    await fs.chown(tmp, owner.uid, owner.gid);
    await fs.chmod(tmp, 0o400);
    await fs.rename(tmp, file);
  }
}
