import { Command } from 'commander';
import { commandConfig, gatewayClient } from '../context.ts';
import type { InstancesInfo } from '../api-client.ts';

/** `hearth ps [NAME] [--json]`: every instance the workers hold, like `docker ps`. */
export function psCommand(): Command {
  return new Command('ps')
    .argument('[name]', 'only this function\'s instances')
    .description('list running instances: function, version, state, worker, age, calls served')
    .option('--json', 'print the gateway\'s answer as JSON')
    .action(async (name: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const info = await gatewayClient(commandConfig(cmd)).instances(name);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
        return;
      }
      process.stdout.write(renderInstances(info));
    });
}

export function renderInstances(info: InstancesInfo, now = Date.now()): string {
  const rows = [
    ['INSTANCE', 'FUNCTION', 'VERSION', 'STATE', 'STARTED', 'WORKER', 'AGE', 'CALLS'],
    ...[...info.instances]
      .sort((a, b) => a.function.localeCompare(b.function) || a.startedAt - b.startedAt)
      .map((i) => [i.id, i.function, String(i.version), i.state, i.start, i.worker, age(now - i.startedAt), String(i.calls)]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('   ')).join('\n');
  const workers = info.workers
    .map((w) => {
      const cells = Object.entries(w.stemCells).map(([runtime, c]) => `${runtime} ${c.ready} ready`).join(', ');
      return `worker ${w.workerId}: ${w.memory.usedMb} of ${w.memory.totalMb} MB${cells ? `; stem cells: ${cells}` : ''}`;
    })
    .join('\n');
  return `${table}\n${workers ? `\n${workers}\n` : '\nno worker is running\n'}`;
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}
