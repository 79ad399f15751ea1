import fs from 'node:fs/promises';
import { Command } from 'commander';
import { invalidArgument } from '@hearth/core';
import { commandConfig, gatewayClient } from '../context.ts';
import type { SecretInfo, SecretValue } from '../api-client.ts';

/**
 * `KEY=value` or `KEY=@file` (the file's bytes, sent as base64). Errors name the argument's
 * key, never its value.
 */
export async function parseSecretArgs(args: string[]): Promise<Record<string, SecretValue>> {
  const values: Record<string, SecretValue> = {};
  for (const [i, arg] of args.entries()) {
    const eq = arg.indexOf('=');
    // Not quoted back: a forgotten "KEY=" leaves the value alone in the argument.
    if (eq <= 0) throw invalidArgument(`pair ${i + 1} after the function name is not KEY=value or KEY=@file`);
    const key = arg.slice(0, eq);
    const value = arg.slice(eq + 1);
    if (key in values) throw invalidArgument(`secret ${key} is given twice`);
    if (value.startsWith('@') && value.length > 1) {
      const file = value.slice(1);
      try {
        values[key] = { base64: (await fs.readFile(file)).toString('base64') };
      } catch (err) {
        throw invalidArgument(`${key}=@${file}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    } else {
      values[key] = value;
    }
  }
  return values;
}

function renderSecrets(list: SecretInfo[]): string {
  const rows = [['KEY', 'UPDATED'], ...list.map((s) => [s.key, s.updatedAt])];
  const width = Math.max(...rows.map((r) => r[0]!.length));
  return rows.map((r) => `${r[0]!.padEnd(width)}  ${r[1]}`).join('\n') + '\n';
}

/** `hearth secrets set|ls|rm`: a function's secrets, files under /run/secrets in its sandbox. */
export function secretsCommand(): Command {
  const secrets = new Command('secrets').description('function secrets: encrypted at rest, mounted read-only as files under /run/secrets; values are never shown');

  secrets
    .command('set')
    .description('add or replace secrets of a function (others stay); the function need not be deployed yet')
    .argument('<name>', 'function name')
    .argument('<pairs...>', 'KEY=value, or KEY=@file for a file\'s contents (keeps the value out of shell history)')
    .action(async (name: string, pairs: string[], _opts: object, cmd: Command) => {
      const values = await parseSecretArgs(pairs);
      const saved = await gatewayClient(commandConfig(cmd)).putSecrets(name, values);
      process.stdout.write(`Set ${saved.map((s) => s.key).join(', ')} for ${name} (/run/secrets/<KEY> in new instances)\n`);
    });

  secrets
    .command('ls')
    .alias('list')
    .description('list a function\'s secret names and when each was set (never the values)')
    .argument('<name>', 'function name')
    .option('--json', 'print the gateway\'s list as JSON')
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
      const list = await gatewayClient(commandConfig(cmd)).listSecrets(name);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        return;
      }
      if (list.length === 0) {
        process.stderr.write(`${name} has no secrets. Set one with: hearth secrets set ${name} KEY=@file\n`);
        return;
      }
      process.stdout.write(renderSecrets(list));
    });

  secrets
    .command('rm')
    .alias('remove')
    .description('delete secrets of a function')
    .argument('<name>', 'function name')
    .argument('<keys...>', 'secret names')
    .action(async (name: string, keys: string[], _opts: object, cmd: Command) => {
      const gateway = gatewayClient(commandConfig(cmd));
      for (const key of keys) {
        await gateway.deleteSecret(name, key);
        process.stdout.write(`Removed secret ${key} of ${name}\n`);
      }
    });

  return secrets;
}
