import { Command } from 'commander';
import { commandConfig, gatewayClient } from '../context.ts';
import type { ApiKeyInfo } from '../api-client.ts';

/** Aligned columns without borders, like `hearth ls`. */
export function renderKeys(keys: ApiKeyInfo[]): string {
  const rows = [
    ['ID', 'PREFIX', 'NAME', 'ROLE', 'CREATED', 'LAST USED', 'STATUS'],
    ...keys.map((k) => [k.id, k.prefix, k.name, k.role, k.createdAt, k.lastUsedAt ?? '-', k.revokedAt ? `revoked ${k.revokedAt}` : 'active']),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** `hearth keys create|ls|revoke`: API keys for the management API and private functions. */
export function keysCommand(): Command {
  const keys = new Command('keys').description('API keys: create, list, revoke (a key is shown once, when it is created)');

  keys
    .command('create')
    .description('create an API key and print it (stdout, once: it is stored hashed)')
    .option('-n, --name <name>', 'a name to tell the key apart in `hearth keys ls`', 'cli')
    .option('--json', 'print the key with its id, prefix and name as JSON')
    .action(async (opts: { name: string; json?: boolean }, cmd: Command) => {
      const created = await gatewayClient(commandConfig(cmd)).createKey(opts.name);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(created)}\n`);
        return;
      }
      process.stderr.write(`Created key ${created.id} (${created.name}). It is shown only now; use it as Authorization: Bearer <key> or with \`hearth login --key\`:\n`);
      process.stdout.write(`${created.key}\n`);
    });

  keys
    .command('ls')
    .alias('list')
    .description('list API keys (ids, names, prefixes; never the keys)')
    .option('--json', 'print the gateway\'s key list as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const list = await gatewayClient(commandConfig(cmd)).listKeys();
      process.stdout.write(opts.json ? `${JSON.stringify(list, null, 2)}\n` : renderKeys(list));
    });

  keys
    .command('revoke')
    .description('revoke API keys: requests with them get 401 from now on')
    .argument('<id...>', 'key ids (or prefixes hk_<id>) from `hearth keys ls`')
    .action(async (ids: string[], _opts: object, cmd: Command) => {
      const gateway = gatewayClient(commandConfig(cmd));
      for (const id of ids) {
        const info = await gateway.revokeKey(id);
        process.stdout.write(`Revoked ${info.id} (${info.name})\n`);
      }
    });

  return keys;
}
