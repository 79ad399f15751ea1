import { Command } from 'commander';
import { commandConfig, gatewayClient } from '../context.ts';
import type { FunctionInfo } from '../api-client.ts';

/** `hearth ls [--json]`: the gateway's functions as a table. */
export function lsCommand(): Command {
  return new Command('ls')
    .alias('list')
    .description('list deployed functions: name, current version, runtime, image digest, last update')
    .option('--json', 'print the gateway\'s FunctionInfo array as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const functions = await gatewayClient(commandConfig(cmd)).listFunctions();
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(functions, null, 2)}\n`);
        return;
      }
      if (functions.length === 0) {
        process.stderr.write('No functions deployed. Create one with: hearth init NAME && hearth deploy NAME\n');
        return;
      }
      process.stdout.write(renderTable(functions));
    });
}

/** Aligned columns, like `docker ps`: no borders, so `awk '{print $1}'` works. */
export function renderTable(functions: FunctionInfo[], now = Date.now()): string {
  const rows = [
    ['NAME', 'VERSION', 'RUNTIME', 'IMAGE', 'UPDATED'],
    ...[...functions]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((f) => [f.name, String(f.version), f.runtime, shortDigest(f.digest || f.image), ago(f.updatedAt, now)]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('   ')).join('\n') + '\n';
}

function shortDigest(value: string): string {
  const hex = /sha256:([a-f0-9]{64})/.exec(value)?.[1];
  return hex ? `sha256:${hex.slice(0, 12)}` : value;
}

function ago(iso: string, now: number): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  if (s < 30 * 86400) return `${Math.floor(s / 86400)}d ago`;
  return new Date(t).toISOString().slice(0, 10);
}
