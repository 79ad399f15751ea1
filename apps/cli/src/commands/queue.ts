import fs from 'node:fs/promises';
import { Command } from 'commander';
import { invalidArgument } from '@hearth/core';
import { callsApi, commandConfig } from '../context.ts';

async function readData(data: string | undefined): Promise<Uint8Array> {
  if (data === undefined) return new TextEncoder().encode('{}');
  let text = data;
  if (data === '@-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  } else if (data.startsWith('@')) {
    try {
      text = await fs.readFile(data.slice(1), 'utf8');
    } catch (err) {
      throw invalidArgument(`--data ${data}: cannot read ${data.slice(1)} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  try {
    JSON.parse(text);
  } catch {
    throw invalidArgument(`--data: not JSON (the job data must be JSON): ${text.slice(0, 80)}`);
  }
  return new TextEncoder().encode(text);
}

/** `hearth queue add NAME --data JSON`: a job for the function a queue triggers. */
export function queueCommand(): Command {
  const queue = new Command('queue').description('trigger queues: add jobs for the functions they trigger');
  queue
    .command('add')
    .description('add a job to a trigger queue; prints the job id, the call id and the function as JSON')
    .argument('<queue>', 'queue name (a "triggers: - queue: NAME" in some hearth.yaml)')
    .option('-d, --data <json>', 'job data: JSON, @FILE or @- for stdin (default {})')
    .option('--job-id <id>', 'job id; a job with this id is not added twice (idempotency key)')
    .option('--name <name>', 'BullMQ job name', 'job')
    .option('--delay <ms>', 'run no earlier than this many milliseconds from now')
    .action(async (name: string, opts: { data?: string; jobId?: string; name: string; delay?: string }, cmd: Command) => {
      const delayMs = opts.delay === undefined ? 0 : Number(opts.delay);
      if (!Number.isInteger(delayMs) || delayMs < 0) throw invalidArgument(`--delay ${opts.delay}: expected milliseconds`);
      const body = await readData(opts.data);
      const res = await callsApi(commandConfig(cmd)).addJob(name, body, { name: opts.name, ...(opts.jobId ? { jobId: opts.jobId } : {}), ...(delayMs ? { delayMs } : {}) });
      if (res.duplicate) process.stderr.write(`job ${res.jobId} is already in queue ${name}; not added again\n`);
      process.stdout.write(`${JSON.stringify(res)}\n`);
    });
  return queue;
}
