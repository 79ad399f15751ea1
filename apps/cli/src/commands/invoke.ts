import fs from 'node:fs/promises';
import { Command } from 'commander';
import { invalidArgument, isHearthError, notFound } from '@hearth/core';
import { commandConfig, gatewayClient } from '../context.ts';
import { EXIT, messageFor } from '../errors.ts';

interface InvokeCliOptions {
  data?: string;
  method?: string;
  path?: string;
  header: string[];
  verbose?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** `hearth invoke NAME`: calls `/function/NAME[/path]` and writes the body to stdout. */
export function invokeCommand(): Command {
  return new Command('invoke')
    .summary('call a function and print its response')
    .description(
      'call a function through the gateway and write its response body to stdout.\n' +
        'The request body comes from --data, or from stdin when stdin is not a terminal.\n' +
        'A non-2xx answer still goes to stdout; its status goes to stderr and the exit code is 1.',
    )
    .argument('<name>', 'function name')
    .option('-d, --data <data>', 'request body: a string, @FILE for a file, @- for stdin')
    .option('-X, --method <method>', 'HTTP method (default: POST with a body, GET without)')
    .option('-p, --path <path>', 'sub-path after /function/NAME, with an optional ?query')
    .option('-H, --header <name:value>', 'request header; repeat for more', collect, [])
    .option('-v, --verbose', 'print the status and response headers (X-Hearth-Start, X-Duration-Seconds) to stderr')
    .action(async (name: string, opts: InvokeCliOptions, cmd: Command) => {
      const config = commandConfig(cmd);
      const gateway = gatewayClient(config);
      const body = await readBody(opts.data);
      const headers = parseHeaders(opts.header);

      const res = await gateway.invoke(name, {
        headers,
        ...((await isPrivate(gateway, name, headers)) ? { withKey: true } : {}),
        ...(opts.method ? { method: opts.method } : {}),
        ...(opts.path ? { path: opts.path } : {}),
        ...(body ? { body } : {}),
      });
      const bytes = new Uint8Array(await res.arrayBuffer());

      // A 404 is either the gateway (no such function) or the function's own answer.
      if (res.status === 404 && !(await exists(gateway, name))) throw notFound(`function ${JSON.stringify(name)} not found`);

      if (opts.verbose) {
        process.stderr.write(`< ${res.status} ${res.statusText}\n`);
        res.headers.forEach((value, key) => process.stderr.write(`< ${key}: ${value}\n`));
      }
      await write(process.stdout, bytes);
      if (!res.ok) {
        process.stderr.write(`hearth: ${name} answered ${res.status} ${res.statusText}${gatewayReason(res, bytes)}\n`);
        process.exitCode = EXIT.FAILURE;
      }
    });
}

async function readBody(data: string | undefined): Promise<Uint8Array | undefined> {
  if (data === undefined) {
    // Piped input is the body, as with `echo hi | hearth invoke hello`.
    if (process.stdin.isTTY) return undefined;
    const stdin = await readStdin();
    return stdin.length > 0 ? stdin : undefined;
  }
  if (data === '@-') return readStdin();
  if (data.startsWith('@')) {
    const file = data.slice(1);
    try {
      return await fs.readFile(file);
    } catch (err) {
      throw invalidArgument(`--data ${data}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  return new TextEncoder().encode(data);
}

async function readStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function parseHeaders(values: string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const value of values) {
    const colon = value.indexOf(':');
    const key = colon > 0 ? value.slice(0, colon).trim() : '';
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(key)) throw invalidArgument(`--header ${JSON.stringify(value)}: expected NAME:VALUE`);
    headers[key] = value.slice(colon + 1).trim();
  }
  return headers;
}

/**
 * Whether to send the API key: only to a function with `auth: key` (the gateway takes the
 * key off before the handler runs). A public function gets the caller's headers as they
 * are, so the key must not be among them; a -H Authorization of the user's own wins.
 */
async function isPrivate(gateway: ReturnType<typeof gatewayClient>, name: string, headers: Record<string, string>): Promise<boolean> {
  if (!gateway.auth || Object.keys(headers).some((h) => h.toLowerCase() === 'authorization')) return false;
  try {
    return (await gateway.getFunction(name)).spec.auth === 'key';
  } catch {
    // Unknown function or a key the gateway refuses: the call itself will say so.
    return false;
  }
}

async function exists(gateway: ReturnType<typeof gatewayClient>, name: string): Promise<boolean> {
  try {
    await gateway.getFunction(name);
    return true;
  } catch (err) {
    if (isHearthError(err, 'NOT_FOUND')) return false;
    throw err;
  }
}

/** The gateway's own errors (timeout, no capacity) carry `{ error, code }`; show the reason. */
function gatewayReason(res: Response, bytes: Uint8Array): string {
  if (!res.headers.get('content-type')?.includes('json') || bytes.length > 4096) return '';
  try {
    const value = JSON.parse(Buffer.from(bytes).toString('utf8')) as { error?: unknown; code?: unknown };
    return typeof value.error === 'string' && typeof value.code === 'string' ? `: ${messageFor(value.error)}` : '';
  } catch {
    return '';
  }
}

function write(stream: NodeJS.WritableStream, bytes: Uint8Array): Promise<void> {
  if (bytes.length === 0) return Promise.resolve();
  return new Promise((resolve, reject) => stream.write(bytes, (err) => (err ? reject(err) : resolve())));
}
