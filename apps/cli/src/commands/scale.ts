import { Command, InvalidArgumentError } from 'commander';
import { commandConfig, gatewayClient } from '../context.ts';

const count = (min: number) => (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number of at least ${min}`);
  return n;
};

/** `hearth scale NAME --min N --max M`: warm instances kept and the cap, without a deploy. */
export function scaleCommand(): Command {
  return new Command('scale')
    .argument('<name>', 'function name')
    .description('set how many instances are kept warm (--min) and the most that may run (--max)')
    .option('--min <n>', 'instances kept running even when idle (minWarm)', count(0))
    .option('--max <n>', 'the most instances at once (maxInstances)', count(1))
    .action(async (name: string, opts: { min?: number; max?: number }, cmd: Command) => {
      if (opts.min === undefined && opts.max === undefined) throw new InvalidArgumentError('give --min, --max or both');
      const change = { ...(opts.min !== undefined ? { minWarm: opts.min } : {}), ...(opts.max !== undefined ? { maxInstances: opts.max } : {}) };
      const result = await gatewayClient(commandConfig(cmd)).scale(name, change);
      process.stdout.write(`${result.name}: minWarm ${result.minWarm}, maxInstances ${result.maxInstances}\n`);
    });
}
