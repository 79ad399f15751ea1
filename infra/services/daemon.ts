import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Helpers shared by the local services: start a server in its own session (so a Ctrl-C
 * at the terminal reaches the stack, which then stops things in order), wait for it to
 * answer, and stop it by pid.
 */

export interface Daemon {
  pid: number;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  /** True once the process has exited. */
  hasExited(): boolean;
}

/** Starts `command` detached from our process group, stdout and stderr appended to `logFile`. */
export function spawnDaemon(command: string, args: string[], opts: { logFile: string; cwd?: string; env?: NodeJS.ProcessEnv }): Daemon {
  const out = fs.openSync(opts.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, detached: true, stdio: ['ignore', out, out] });
  } finally {
    fs.closeSync(out);
  }
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve(code ?? signal ?? 'unknown');
    });
    // A missing binary shows up as 'error' without 'exit'.
    child.once('error', () => {
      done = true;
      resolve('spawn failed');
    });
  });
  // The stack holds these servers by pid; they must not keep our event loop alive.
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${command}: is it installed? (bash infra/install.sh)`);
  return { pid: child.pid, child, exited, hasExited: () => done };
}

/** Whether a process with this pid exists (zombies count as gone once reaped by Node). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a live process, '' when it is gone. */
export function commandLine(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Polls until the process is gone or `timeoutMs` passes; returns whether it is gone. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** SIGTERM, then SIGKILL after `graceMs`. Resolves once the pid is gone. */
export async function stopPid(pid: number, graceMs = 5000): Promise<void> {
  if (!isAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitForExit(pid, graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitForExit(pid, 5000);
}

/** Reads a pid file; undefined when it is missing or holds no number. */
export function readPidFile(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').split('\n')[0]?.trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A pid file left by an earlier run: removes it when its process is gone, and stops the
 * process when it is still `program` (it did not answer on its port, or we would have reused it).
 */
export async function clearStalePidFile(file: string, program: string): Promise<void> {
  const pid = readPidFile(file);
  if (pid === undefined) return;
  if (isAlive(pid) && commandLine(pid).includes(program)) await stopPid(pid);
  fs.rmSync(file, { force: true });
}

/** 'closed' when nothing accepts TCP connections on host:port, else 'open'. */
export function probePort(host: string, port: number, timeoutMs = 1000): Promise<'open' | 'closed'> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const finish = (state: 'open' | 'closed') => {
      socket.destroy();
      resolve(state);
    };
    socket.setTimeout(timeoutMs, () => finish('open'));
    socket.once('connect', () => finish('open'));
    socket.once('error', () => finish('closed'));
  });
}

/**
 * Polls `check` until it returns true. Fails after `timeoutMs`, or at once when `failed`
 * returns a reason (e.g. the server process exited).
 */
export async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  failed: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reason = failed();
    if (reason) throw new Error(`${what}: ${reason}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${Math.round(timeoutMs / 1000)} s`);
    await sleep(100);
  }
}

/** The last lines of a log file, for error messages. */
export function logTail(file: string, lines = 8): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1' || host === '[::1]';
}
