import { Command, InvalidArgumentError } from 'commander';
import { HearthError, unavailable, type TraceInfo } from '@hearth/core';
import { commandConfig, gatewayClient } from '../context.ts';
import { authHeaders, errorFromResponse, type GatewayClient } from '../api-client.ts';
import { networkReason } from '../errors.ts';


const positiveInt = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 200) throw new InvalidArgumentError('expected a whole number from 1 to 200');
  return n;
};

const TIMEOUT_MS = 30_000;

/** `GET /system/traces?function=NAME&limit=N` with the client's key. */
async function fetchTraces(client: GatewayClient, name: string, limit: number): Promise<TraceInfo[]> {
  const path = `/system/traces?function=${encodeURIComponent(name)}&limit=${limit}`;
  let res: Response;
  try {
    res = await fetch(`${client.baseUrl}${path}`, { headers: authHeaders(client.auth), signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    if ((err as Error).name === 'TimeoutError') throw new HearthError('TIMEOUT', `gateway ${client.baseUrl} did not answer GET ${path} in ${TIMEOUT_MS / 1000} s`);
    throw unavailable(`gateway ${client.baseUrl} is unreachable (${networkReason(err)}); is "npm start" running?`, err);
  }
  if (!res.ok) throw await errorFromResponse(res, `GET ${path}`);
  return (await res.json()) as TraceInfo[];
}

/** `hearth traces NAME [--limit N] [--json]`: the last calls as waterfalls (phase, start offset, duration). */
export function tracesCommand(): Command {
  return new Command('traces')
    .description("show a function's last calls as waterfalls: each phase, when it started and how long it took")
    .argument('<name>', 'function name')
    .option('-n, --limit <calls>', 'how many of the latest calls', positiveInt, 5)
    .option('--json', "print the gateway's traces (with every span and attribute) as JSON")
    .action(async (name: string, opts: { limit: number; json?: boolean }, cmd: Command) => {
      const traces = await fetchTraces(gatewayClient(commandConfig(cmd)), name, opts.limit);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(traces, null, 2)}\n`);
        return;
      }
      if (traces.length === 0) {
        process.stderr.write(`No traces of ${JSON.stringify(name)} yet: call it (spans reach the store about a second after a call).\n`);
        return;
      }
      process.stdout.write(traces.map((t) => renderWaterfall(t)).join('\n'));
    });
}

const ms = (us: number): string => (us >= 10_000_000 ? `${(us / 1e6).toFixed(1)} s` : `${(us / 1000).toFixed(1)} ms`);

/**
 * One trace as text: a row per span, indented under its parent, with its start offset, its
 * duration and a bar on the trace's timeline. Plain characters only, so it pipes and greps.
 */
export function renderWaterfall(trace: TraceInfo, barWidth = 40): string {
  const when = new Date(trace.startedAt).toISOString().replace('T', ' ').slice(0, 19);
  const head = `${trace.functionName ?? '?'}  ${trace.start ?? '-'}  ${ms(trace.durationUs)}  ${when}  trace ${trace.traceId}`;
  const total = Math.max(trace.durationUs, 1);
  const rows = trace.spans.map((s) => {
    const from = Math.min(barWidth - 1, Math.floor((s.offsetUs / total) * barWidth));
    const len = Math.max(1, Math.min(barWidth - from, Math.round((s.durationUs / total) * barWidth)));
    const bar = `${' '.repeat(from)}${'#'.repeat(len)}`.padEnd(barWidth);
    return [`${'  '.repeat(s.depth)}${s.name}`, `+${ms(s.offsetUs)}`, ms(s.durationUs), `|${bar}|${s.status === 'error' ? ` error: ${s.statusMessage ?? ''}` : ''}`];
  });
  const table = [['PHASE', 'START', 'DURATION', ''], ...rows];
  const w = [0, 1, 2].map((i) => Math.max(...table.map((r) => r[i]!.length)));
  const lines = table.map((r) => [r[0]!.padEnd(w[0]!), r[1]!.padStart(w[1]!), r[2]!.padStart(w[2]!), r[3]].join('  ').trimEnd());
  return `${head}\n${lines.join('\n')}\n`;
}
