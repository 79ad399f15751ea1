/**
 * `npm start`: the whole local stack in the foreground. Starts (or reuses) Redis, Postgres
 * and the registry, migrates the database, pushes the base images, then runs the gateway
 * and one worker. Ctrl-C (or SIGTERM) stops the apps first, so the worker can release its
 * containers and mounts, then the services this run started.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnPrefixed, type PrefixedChild } from './child.ts';
import { ensureBaseImages, ensureVmKernel, migrate } from './prepare.ts';
import { probePort } from './services/daemon.ts';
import { startServices, type Services } from './services/index.ts';

const APP_GRACE_MS = 20_000;
const READY_TIMEOUT_MS = 60_000;

const log = (line: string) => process.stdout.write(`[hearth] ${line}\n`);

let servicesReady: Promise<Services | undefined> | undefined;
let services: Services | undefined;
/** The gateway and the worker, and the image build while it runs. */
const apps: PrefixedChild[] = [];
let stopping: Promise<never> | undefined;

/** Stops the apps, sweeps what the worker may have left, stops our services, exits. */
function shutdown(code: number, reason: string): Promise<never> {
  stopping ??= (async () => {
    log(reason);
    await Promise.all(apps.map((app) => app.stop(APP_GRACE_MS)));
    // Services still coming up are stopped once they are up, not orphaned.
    services ??= await servicesReady?.catch(() => undefined);
    await sweepInstances();
    await services?.stop();
    log('stopped');
    process.exit(code);
  })();
  return stopping;
}

/** A safety net: the worker cleans up on SIGTERM, but not if it was killed. */
async function sweepInstances(): Promise<void> {
  if (!services) return;
  try {
    const { cleanupInstances } = await import('@hearth/runtime');
    const { loadConfig } = await import('@hearth/core');
    const config = loadConfig({ ...process.env, ...services.env });
    await cleanupInstances(config.home, config.instancePrefix);
  } catch (err) {
    log(`warning: could not check for leftover instances: ${(err as Error).message}`);
  }
}

// Ctrl-C reaches us once from the terminal and again from each of npm and bash relaying
// it, so only a signal that comes a while after the first counts as "hurry up".
let firstSignalAt = 0;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    const now = Date.now();
    if (firstSignalAt === 0) {
      firstSignalAt = now;
      void shutdown(0, `${sig}: stopping`);
    } else if (now - firstSignalAt > 1000) {
      log('killing the apps now');
      for (const app of apps) app.kill();
    }
  });
}

async function waitForGateway(url: string, gateway: PrefixedChild): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (gateway.hasExited()) return; // reported by its exit handler
    const ok = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
    if (ok) return;
    await sleep(200);
  }
  throw new Error(`the gateway did not answer ${url}/healthz within ${READY_TIMEOUT_MS / 1000} s`);
}

/**
 * The gateway writes a local admin key to `<home>/admin.key` as it starts; the CLI on this
 * machine reads it from there, so `npx hearth …` works with no login. Says where it is.
 */
async function reportAdminKey(home: string): Promise<void> {
  const file = path.join(home, 'admin.key');
  for (let i = 0; i < 50; i++) {
    if (await fs.stat(file).then(() => true, () => false)) {
      log(`API key: the CLI on this machine uses ${file}; \`hearth keys create\` makes keys for others`);
      return;
    }
    await sleep(100);
  }
  log(`warning: the gateway wrote no ${file}; the management API will answer 401 until you pass a key (see the gateway's output)`);
}

async function main(): Promise<void> {
  const ready = startServices({ log });
  servicesReady = ready;
  const started = await ready;
  services = started;
  const host = process.env.HEARTH_HOST || '127.0.0.1';
  const port = process.env.HEARTH_PORT || '8080';
  const env = { ...process.env, ...started.env, HEARTH_HOST: host, HEARTH_PORT: port };
  if (stopping) return;
  if ((await probePort(host, Number(port))) === 'open') {
    throw new Error(`${host}:${port} is already in use (is Hearth already running?); stop that or set HEARTH_PORT`);
  }

  log('migrating the database');
  await migrate(started.env.DATABASE_URL!);
  if (stopping) return;
  await ensureBaseImages(env, log, (child) => apps.push(child));
  if (stopping) return;
  await ensureVmKernel(env, log, (child) => apps.push(child));
  if (stopping) return;

  const entries = [['gateway', 'apps/gateway/src/main.ts'], ['worker', 'apps/worker/src/main.ts']] as const;
  const [gateway, worker] = entries.map(([name, entry]) => {
    const app = spawnPrefixed(name, process.execPath, ['--import', 'tsx', entry], { env, detached: true });
    apps.push(app);
    void app.exited.then((code) => {
      if (!stopping) void shutdown(1, `${name} exited unexpectedly (${code}); stopping everything`);
    });
    return app;
  });
  const url = `http://${host}:${port}`;
  await waitForGateway(url, gateway!);
  if (!stopping && !gateway!.hasExited() && !worker!.hasExited()) {
    log(`Hearth is up: ${url} (gateway), registry ${started.env.HEARTH_REGISTRY}`);
    await reportAdminKey(started.env.HEARTH_HOME!);
  }
}

main().catch((err: unknown) => void shutdown(1, `error: ${(err as Error).message}`));
