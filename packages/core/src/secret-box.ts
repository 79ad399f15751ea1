import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { HearthError } from './errors.ts';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** Where the master key lives when HEARTH_SECRETS_KEY is not set. */
export const SECRETS_KEY_FILE = 'secrets.key';

/**
 * AES-256-GCM for secrets at rest. A sealed value is base64(iv 12 bytes + auth tag 16 bytes
 * + ciphertext), the format of the `secrets.sealed` column. `context` is bound in as
 * additional authenticated data: a sealed value copied to another function's or key's row
 * does not open there.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new HearthError('INVALID_ARGUMENT', `secrets key must be ${KEY_BYTES} bytes, got ${key.length}`);
    this.key = Buffer.from(key);
  }

  seal(plain: Buffer | string, context = ''): string {
    const iv = crypto.randomBytes(IV_BYTES);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(typeof plain === 'string' ? Buffer.from(plain, 'utf8') : plain), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
  }

  /** Throws INTERNAL when the value was tampered with, sealed for another context or with another key. */
  open(sealed: string, context = ''): Buffer {
    const raw = Buffer.from(sealed, 'base64');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new HearthError('INTERNAL', 'sealed secret is truncated');
    const decipher = crypto.createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
    } catch (err) {
      throw new HearthError('INTERNAL', 'sealed secret does not authenticate: tampered with, or sealed with another secrets key (HEARTH_SECRETS_KEY / <home>/secrets.key)', { cause: err });
    }
  }
}

/** The AAD for one function's secret: the gateway seals and the worker opens with the same. */
export const secretContext = (functionName: string, key: string): string => `hearth-secret\0${functionName}\0${key}`;

/**
 * The master key: HEARTH_SECRETS_KEY (base64 of 32 bytes) when set, else `<home>/secrets.key`,
 * created (mode 0600) on first use. Gateway and worker must see the same key: the same
 * HEARTH_HOME on one machine, the same HEARTH_SECRETS_KEY across machines.
 */
export async function loadSecretBox(home: string, env: NodeJS.ProcessEnv = process.env): Promise<SecretBox> {
  const fromEnv = env.HEARTH_SECRETS_KEY;
  if (fromEnv) {
    const key = Buffer.from(fromEnv, 'base64');
    if (key.length !== KEY_BYTES) throw new HearthError('INVALID_ARGUMENT', `HEARTH_SECRETS_KEY must be base64 of ${KEY_BYTES} bytes (openssl rand -base64 32), got ${key.length} bytes`);
    return new SecretBox(key);
  }
  return new SecretBox(await readOrCreateKeyFile(path.join(home, SECRETS_KEY_FILE)));
}

async function readOrCreateKeyFile(file: string): Promise<Buffer> {
  const existing = await readKeyFile(file);
  if (existing) return existing;
  await fs.mkdir(path.dirname(file), { recursive: true });
  // Written aside, then linked into place: link fails if another process (gateway and
  // worker start together) got there first, and nobody ever reads a half-written key.
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  await fs.writeFile(tmp, crypto.randomBytes(KEY_BYTES).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  try {
    await fs.link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await fs.rm(tmp, { force: true });
  }
  const key = await readKeyFile(file);
  if (!key) throw new HearthError('INTERNAL', `could not create the secrets key ${file}`);
  return key;
}

async function readKeyFile(file: string): Promise<Buffer | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== KEY_BYTES) throw new HearthError('INTERNAL', `${file} must hold base64 of ${KEY_BYTES} bytes; it holds ${key.length} bytes`);
  return key;
}
