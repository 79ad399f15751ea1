import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { REPO_ROOT } from './services/index.ts';

/** A program the stack runs in the foreground, its output lines prefixed with `[name]`. */
export interface PrefixedChild {
  name: string;
  pid: number;
  child: ChildProcess;
  /** Exit code, or the signal name when it was killed. */
  exited: Promise<number | string>;
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL to its whole process group after `graceMs`. Resolves once it has exited. */
  stop(graceMs: number): Promise<number | string>;
  /** SIGKILL to its whole process group, now. */
  kill(): void;
}

/**
 * Spawns a program with piped output. `detached` puts it in its own process group so that
 * a Ctrl-C at the terminal reaches only the stack, which then stops children in order.
 */
export function spawnPrefixed(
  name: string,
  command: string,
  args: string[],
  opts: { env: Record<string, string | undefined>; detached: boolean },
): PrefixedChild {
  const child = spawn(command, args, { cwd: REPO_ROOT, env: opts.env, detached: opts.detached, stdio: ['ignore', 'pipe', 'pipe'] });
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('error', (err) => {
      done = true;
      process.stderr.write(`[${name}] could not start: ${err.message}\n`);
      resolve('spawn failed');
    });
    child.once('exit', (code, signal) => {
      done = true;
      resolve(code ?? signal ?? 'unknown');
    });
  });
  for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]] as const) {
    readline.createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => out.write(`[${name}] ${line}\n`));
  }
  const signal = (sig: NodeJS.Signals, group: boolean) => {
    if (done || child.pid === undefined) return;
    try {
      process.kill(group && opts.detached ? -child.pid : child.pid, sig);
    } catch {
      // Already gone.
    }
  };
  const stop = async (graceMs: number) => {
    signal('SIGTERM', false);
    const result = await Promise.race([exited, sleep(graceMs).then(() => undefined)]);
    if (result !== undefined) return result;
    process.stderr.write(`[hearth] ${name} did not stop within ${Math.round(graceMs / 1000)} s; killing it\n`);
    signal('SIGKILL', true);
    return exited;
  };
  return { name, pid: child.pid ?? -1, child, exited, hasExited: () => done, stop, kill: () => signal('SIGKILL', true) };
}
