import fs from 'node:fs/promises';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { commandConfig, gatewayClient } from '../context.ts';
import { renderStartupSvg } from '../bench/startup-chart.ts';
import { buildReport, renderReport, summarizeReference, type ReferenceSummary } from '../bench/startup-report.ts';
import { BENCH_ISOLATIONS, measureStartups, type BenchIsolation, type StartupSample } from '../bench/startup-run.ts';

const runsOf = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 200) throw new InvalidArgumentError('expected a whole number from 1 to 200');
  return n;
};

const isolationsOf = (value: string): BenchIsolation[] => {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.find((s) => !(BENCH_ISOLATIONS as readonly string[]).includes(s));
  if (bad !== undefined || list.length === 0) throw new InvalidArgumentError(`expected a comma-separated list of ${BENCH_ISOLATIONS.join(', ')}${bad !== undefined ? `; "${bad}" is none of them` : ''}`);
  return [...new Set(list)] as BenchIsolation[];
};

interface StartupOptions {
  isolation: BenchIsolation[];
  runs: number;
  out: string;
  references: boolean;
}

/**
 * `hearth bench startup NAME --isolation container,vm -n N`: N cold starts per isolation
 * through the real path, read back from their traces; a table per phase, an SVG chart and a
 * JSON of every span; `runc run` and `docker run` of the same image as references.
 */
function startupCommand(): Command {
  return new Command('startup')
    .description('measure cold starts of a function per isolation from their traces: a phase table, an SVG chart and the raw spans as JSON')
    .argument('<name>', 'a deployed function; its image is started, the function itself is not touched')
    .option('--isolation <list>', `what to start, comma-separated: ${BENCH_ISOLATIONS.join(', ')}`, isolationsOf, ['container', 'vm'] as BenchIsolation[])
    .option('-n, --runs <count>', 'measured starts per isolation (after one unmeasured start that caches the image)', runsOf, 10)
    .option('-o, --out <dir>', 'where startup.json and startup.svg are written', '.')
    .option('--no-references', 'skip the runc run and docker run references')
    .addHelpText(
      'after',
      '\nEach start deploys a new version of a bench copy named NAME-startup-ISOLATION (deleted at the end), waits until\n' +
        "no instance of it is left, calls it once and reads that call's trace. container and vm run the function's\n" +
        "image as `runtime: image`, which no stem cell serves; stemcell is a container start from a prewarmed stem cell.\n" +
        'The references run on this machine (root, runc; docker run where a Docker engine answers on DOCKER_HOST).\n',
    )
    .action(async (name: string, opts: StartupOptions, cmd: Command) => {
      const config = commandConfig(cmd);
      const client = gatewayClient(config);
      const fn = await client.getFunction(name);
      const progress = (line: string) => process.stderr.write(`${line}\n`);
      const samples: StartupSample[] = [];
      for (const isolation of opts.isolation) {
        samples.push(...(await measureStartups({ client, fn, isolation, runs: opts.runs, onProgress: progress })));
      }
      const references: ReferenceSummary[] = [];
      if (opts.references) {
        // Loaded only here: the references pull in the runtime, which no other command needs.
        const { dockerRunReference, runcRunReference } = await import('../bench/references.ts');
        const refOpts = { image: fn.image, runs: opts.runs, limits: { memoryMb: fn.spec.memoryMb, cpu: fn.spec.cpu }, prefix: `${config.instancePrefix}bench-${process.pid}` };
        progress('references: runc run');
        references.push(summarizeReference('runc run', await runcRunReference(refOpts)));
        progress('references: docker run');
        references.push(summarizeReference('docker run', await dockerRunReference(refOpts)));
      }
      const report = buildReport({ fn: { name: fn.name, image: fn.image }, runs: opts.runs, samples, references });
      await fs.mkdir(opts.out, { recursive: true });
      const jsonPath = path.join(opts.out, 'startup.json');
      const svgPath = path.join(opts.out, 'startup.svg');
      await fs.writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
      await fs.writeFile(svgPath, renderStartupSvg(report));
      process.stdout.write(`${renderReport(report)}\nWrote ${jsonPath} and ${svgPath}\n`);
    });
}

/** `hearth bench`: measurements of this installation. */
export function benchCommand(): Command {
  return new Command('bench').description('measure this installation').addCommand(startupCommand());
}
