import { Command } from 'commander';
import { isHearthError, notFound } from '@hearth/core';
import { commandConfig, gatewayClient } from '../context.ts';

/** `hearth rm NAME...`: deletes functions; an unknown name exits 3. */
export function rmCommand(): Command {
  return new Command('rm')
    .alias('remove')
    .description('delete functions with all their versions (their images stay in the registry)')
    .argument('<name...>', 'function names')
    .action(async (names: string[], _opts: object, cmd: Command) => {
      const gateway = gatewayClient(commandConfig(cmd));
      for (const name of names) {
        try {
          await gateway.deleteFunction(name);
        } catch (err) {
          if (isHearthError(err, 'NOT_FOUND')) throw notFound(`function ${JSON.stringify(name)} not found`);
          throw err;
        }
        process.stdout.write(`Removed ${name}\n`);
      }
    });
}
