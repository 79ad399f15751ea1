import { Command } from 'commander';
import { invalidArgument } from '@hearth/core';
import { GatewayClient } from '../api-client.ts';
import { commandConfig } from '../context.ts';
import { writeCliConfig } from '../credentials.ts';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

/**
 * `hearth login --gateway URL --key KEY`: checks the key with the gateway, then saves both
 * in the CLI's config file (mode 0600), so later commands need neither.
 */
export function loginCommand(): Command {
  return new Command('login')
    .description('save a gateway URL and API key for later commands (checked with the gateway first)')
    .option('-k, --key <key>', 'the API key (from `hearth keys create`); without it, read from stdin')
    .addHelpText('after', '\nThe gateway comes from the global --gateway (or HEARTH_GATEWAY). The file is $HEARTH_CONFIG or ~/.config/hearth/config.json.\n')
    .action(async (opts: { key?: string }, cmd: Command) => {
      const config = commandConfig(cmd);
      const key = opts.key ?? (process.stdin.isTTY ? '' : await readStdin());
      if (!key) throw invalidArgument('no key given: pass --key KEY or pipe it on stdin (`hearth keys create` makes one)');
      const who = await new GatewayClient(config.gatewayUrl, { key, source: 'flag or HEARTH_API_KEY' }).whoami();
      const file = writeCliConfig({ gateway: config.gatewayUrl, apiKey: key });
      process.stdout.write(`Logged in to ${config.gatewayUrl} with key ${who.id} (${who.name}); saved in ${file}\n`);
    });
}
