import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HearthError } from '@hearth/core';

/** What `hearth login` writes: the gateway and the key to use with it. */
export interface CliConfigFile {
  gateway?: string;
  apiKey?: string;
}

/** The key's origin, for messages: never the key itself. */
export type KeySource = 'flag or HEARTH_API_KEY' | 'config file' | 'local admin key';

export interface ResolvedKey {
  key: string;
  source: KeySource;
  /** The file it came from, when it came from one. */
  file?: string;
}

/** The repository this CLI runs from: `npm start` keeps its state in `<repo>/.hearth` by default. */
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** `$HEARTH_CONFIG`, else `$XDG_CONFIG_HOME/hearth/config.json`, else `~/.config/hearth/config.json`. */
export function cliConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HEARTH_CONFIG) return path.resolve(env.HEARTH_CONFIG);
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'hearth', 'config.json');
}

export function readCliConfig(env: NodeJS.ProcessEnv = process.env): CliConfigFile {
  const file = cliConfigPath(env);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new HearthError('INVALID_ARGUMENT', `cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const value = JSON.parse(text) as CliConfigFile;
    return {
      ...(typeof value.gateway === 'string' ? { gateway: value.gateway } : {}),
      ...(typeof value.apiKey === 'string' ? { apiKey: value.apiKey } : {}),
    };
  } catch {
    throw new HearthError('INVALID_ARGUMENT', `${file} is not JSON; fix it or run \`hearth login\` again`);
  }
}

/** Writes the config file with mode 0600 (it holds a key), replacing it whole. */
export function writeCliConfig(value: CliConfigFile, env: NodeJS.ProcessEnv = process.env): string {
  const file = cliConfigPath(env);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
  return file;
}

const sameGateway = (a: string, b: string) => a.replace(/\/+$/, '') === b.replace(/\/+$/, '');

/** Only a gateway on this machine gets the local admin key: sending it elsewhere would give it away. */
export function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
  } catch {
    return false;
  }
}

function readKeyFile(file: string): string | undefined {
  try {
    const key = fs.readFileSync(file, 'utf8').trim();
    return key || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The key the CLI sends to `gatewayUrl`, in this order: `--api-key` / HEARTH_API_KEY
 * (`explicitKey`); the config file of `hearth login`, when it names this gateway (or none);
 * the local admin key that the gateway writes to `<HEARTH_HOME>/admin.key` (HEARTH_HOME
 * defaults to ./.hearth, then to the .hearth of the repository this CLI runs from), only
 * for a gateway on loopback. Undefined when there is none: the gateway then says how to get one.
 */
export function resolveApiKey(opts: { gatewayUrl: string; explicitKey?: string; home: string; env?: NodeJS.ProcessEnv }): ResolvedKey | undefined {
  const env = opts.env ?? process.env;
  if (opts.explicitKey) return { key: opts.explicitKey, source: 'flag or HEARTH_API_KEY' };
  const file = readCliConfig(env);
  if (file.apiKey && (!file.gateway || sameGateway(file.gateway, opts.gatewayUrl))) {
    return { key: file.apiKey, source: 'config file', file: cliConfigPath(env) };
  }
  if (!isLoopbackUrl(opts.gatewayUrl)) return undefined;
  const homes = [opts.home, ...(env.HEARTH_HOME ? [] : [path.join(REPO_ROOT, '.hearth')])];
  for (const home of homes) {
    const keyFile = path.join(home, 'admin.key');
    const key = readKeyFile(keyFile);
    if (key) return { key, source: 'local admin key', file: keyFile };
  }
  return undefined;
}
