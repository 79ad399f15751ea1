import { Command, InvalidArgumentError } from 'commander';
import { isHearthError, notFound } from '@hearth/core';
import { commandConfig, gatewayClient } from '../context.ts';

const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number above 0');
  return n;
};

/** `hearth logs NAME [--tail N]`: the function's stdout and stderr. */
export function logsCommand(): Command {
  return new Command('logs')
    .description("print a function's stdout and stderr, newest last")
    .argument('<name>', 'function name')
    .option('-n, --tail <lines>', 'how many lines from the end', positiveInt, 200)
    .action(async (name: string, opts: { tail: number }, cmd: Command) => {
      const gateway = gatewayClient(commandConfig(cmd));
      let text: string;
      try {
        text = await gateway.logs(name, opts.tail);
      } catch (err) {
        if (isHearthError(err, 'NOT_FOUND')) throw notFound(`function ${JSON.stringify(name)} not found`);
        throw err;
      }
      process.stdout.write(text.length === 0 || text.endsWith('\n') ? text : `${text}\n`);
    });
}
