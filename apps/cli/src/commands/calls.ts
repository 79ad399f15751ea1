import { Command } from 'commander';
import { invalidArgument } from '@hearth/core';
import { callsApi, commandConfig } from '../context.ts';
import type { CallInfo } from '../calls-api.ts';

const api = (cmd: Command) => callsApi(commandConfig(cmd));

/** Aligned columns without borders, like `hearth ls`. */
export function renderCalls(calls: CallInfo[]): string {
  const rows = [
    ['ID', 'KIND', 'FUNCTION', 'STATUS', 'ATTEMPTS', 'HTTP', 'CREATED', 'ERROR'],
    ...calls.map((c) => [c.id, c.kind, c.function, c.status, String(c.attempts), c.httpStatus === null ? '-' : String(c.httpStatus), c.createdAt, (c.error ?? '').slice(0, 80)]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

/** `hearth calls ls|show|retry`: async calls, queue jobs and cron ticks, and the dead letters among them. */
export function callsCommand(): Command {
  const calls = new Command('calls').description('async calls, queue jobs and cron ticks: list, show, retry the failed ones');

  calls
    .command('ls')
    .alias('list')
    .description('list calls, newest first')
    .option('--failed', 'only failed or expired calls (the ones `hearth calls retry` takes)')
    .option('-f, --function <name>', 'only calls of this function')
    .option('-n, --limit <n>', 'at most this many', '50')
    .option('--json', "print the gateway's CallInfo array as JSON")
    .action(async (opts: { failed?: boolean; function?: string; limit: string; json?: boolean }, cmd: Command) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1) throw invalidArgument(`--limit ${opts.limit}: expected a positive integer`);
      const list = await api(cmd).list({ limit, ...(opts.failed ? { failed: true } : {}), ...(opts.function ? { functionName: opts.function } : {}) });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        return;
      }
      if (list.length === 0) {
        process.stderr.write(opts.failed ? 'No failed calls.\n' : 'No calls yet.\n');
        return;
      }
      process.stdout.write(renderCalls(list));
    });

  calls
    .command('show')
    .description('show one call: status, attempts, error, and its result when done (JSON)')
    .argument('<id>', 'call id (X-Call-Id, or QUEUE:JOBID for a queue job)')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      process.stdout.write(`${JSON.stringify(await api(cmd).get(id), null, 2)}\n`);
    });

  calls
    .command('retry')
    .description('run a failed or expired call again with its original payload')
    .argument('<id>', 'call id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const res = await api(cmd).retry(id);
      process.stderr.write(res.id === id ? `call ${id} queued again\n` : `call ${id} queued again as ${res.id}\n`);
      process.stdout.write(`${res.id}\n`);
    });

  return calls;
}
