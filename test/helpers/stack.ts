import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  server.close();
  await once(server, 'close');
  return port;
}

export interface AppProcess {
  child: ChildProcess;
  output: () => string;
  /** SIGTERM, then wait for exit (SIGKILL after graceMs). Resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>;
}

/** Starts an app (`apps/<name>/src/main.ts`) under tsx with the given env; resolves when `readyLine` is printed. */
export async function startApp(name: 'gateway' | 'worker', env: NodeJS.ProcessEnv, readyLine: RegExp, timeoutMs = 30000): Promise<AppProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'apps', name, 'src', 'main.ts')], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = once(child, 'exit');
  const deadline = Date.now() + timeoutMs;
  while (!readyLine.test(out)) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode} before it was ready:\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} was not ready within ${timeoutMs} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    output: () => out,
    async stop(graceMs = 20000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const [code] = await exited;
      clearTimeout(timer);
      return code as number | null;
    },
  };
}

export interface TestStack {
  prefix: string;
  home: string;
  gatewayUrl: string;
  /** For the apps and for runCli: the CLI finds the admin key through HEARTH_HOME; HEARTH_CONFIG points at a file no test writes unless it means to. */
  env: NodeJS.ProcessEnv;
  /** The local admin key the gateway wrote to `<home>/admin.key`. */
  apiKey: string;
  /** `{ authorization: 'Bearer <apiKey>' }`, for fetch calls to the management API. */
  authHeaders: Record<string, string>;
  gateway: AppProcess;
  worker: AppProcess;
  /** Stops the worker and gateway (the worker releases its instances), keeps the home for inspection. */
  stopApps(): Promise<void>;
}

/**
 * A gateway and a worker of their own (own port, home, queue prefix and instance prefix) on
 * the shared Redis, a test database and the shared registry.
 */
export async function startStack(opts: { prefix: string; databaseUrl: string; env?: NodeJS.ProcessEnv }): Promise<TestStack> {
  const home = await fs.mkdtemp(path.join(os.tmpdir(), `${opts.prefix}-home-`));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    HEARTH_HOME: home,
    HEARTH_PORT: String(port),
    HEARTH_GATEWAY: `http://127.0.0.1:${port}`,
    DATABASE_URL: opts.databaseUrl,
    HEARTH_QUEUE_PREFIX: opts.prefix,
    HEARTH_INSTANCE_PREFIX: `${opts.prefix}-`,
    // Never the developer's own `hearth login` file.
    HEARTH_CONFIG: path.join(home, 'cli-config.json'),
    ...opts.env,
  };
  const worker = await startApp('worker', env, /worker ready/);
  let gateway: AppProcess;
  try {
    gateway = await startApp('gateway', env, /gateway listening/);
  } catch (err) {
    await worker.stop();
    throw err;
  }
  let apiKey: string;
  try {
    apiKey = await readAdminKey(home);
  } catch (err) {
    await Promise.all([worker.stop(), gateway.stop()]);
    throw new Error(`${(err as Error).message}\n${gateway.output()}`);
  }
  return {
    prefix: opts.prefix,
    home,
    gatewayUrl: `http://127.0.0.1:${port}`,
    env,
    apiKey,
    authHeaders: { authorization: `Bearer ${apiKey}` },
    gateway,
    worker,
    async stopApps() {
      await Promise.all([worker.stop(), gateway.stop()]);
    },
  };
}

/** The key the gateway writes to `<home>/admin.key` as it starts (it may trail "listening" by a moment). */
export async function readAdminKey(home: string, timeoutMs = 15000): Promise<string> {
  const file = path.join(home, 'admin.key');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const key = await fs.readFile(file, 'utf8').then((t) => t.trim(), () => '');
    if (key) return key;
    if (Date.now() > deadline) throw new Error(`the gateway wrote no ${file} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs the real `hearth` CLI as a user would; never throws on a non-zero exit. */
export async function runCli(args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; input?: string }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'apps', 'cli', 'bin', 'hearth.js'), ...args], {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdin.end(opts.input ?? '');
  const [code] = await once(child, 'exit');
  return { code: code as number | null, stdout, stderr };
}
