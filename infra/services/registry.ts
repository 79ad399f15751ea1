import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { clearStalePidFile, isLoopback, logTail, probePort, spawnDaemon, stopPid, waitUntil } from './daemon.ts';
import { once, type LocalService, type ServiceOptions } from './service.ts';

export const DEFAULT_REGISTRY = '127.0.0.1:5000';

/** GET /v2/: 'ok' when a Distribution-style registry answers (200, or 401 when it wants credentials). */
export async function pingRegistry(registry: string): Promise<'ok' | string> {
  try {
    const res = await fetch(`http://${registry}/v2/`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 200 || res.status === 401 ? 'ok' : `GET /v2/ answered ${res.status}`;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * Reuses the registry at HEARTH_REGISTRY (default 127.0.0.1:5000) when GET /v2/ answers;
 * otherwise runs CNCF Distribution (`docker-registry`) on that loopback port, storing blobs
 * in <home>/registry/data with deletes enabled (tests clean up by deleting manifests).
 */
export async function ensureRegistry({ home, env, log }: ServiceOptions): Promise<LocalService> {
  const registry = env.HEARTH_REGISTRY || DEFAULT_REGISTRY;
  const { hostname, port: portText } = new URL(`http://${registry}`);
  const port = Number(portText || 80);
  const reuse: LocalService = { name: 'registry', started: false, env: { HEARTH_REGISTRY: registry }, stop: async () => {} };

  const ping = await pingRegistry(registry);
  if (ping === 'ok') {
    log(`registry: reusing ${registry}`);
    return reuse;
  }
  if ((await probePort(hostname, port)) === 'open') {
    throw new Error(`registry: something answers on ${registry} but not as an OCI registry (${ping}); stop it or set HEARTH_REGISTRY`);
  }
  if (!isLoopback(hostname)) throw new Error(`registry: cannot reach ${registry} (${ping}); is HEARTH_REGISTRY right?`);

  const dir = path.join(home, 'registry');
  const data = path.join(dir, 'data');
  fs.mkdirSync(data, { recursive: true });
  const configFile = path.join(dir, 'config.yml');
  const pidFile = path.join(dir, 'registry.pid');
  const logFile = path.join(dir, 'registry.log');
  const config = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: data }, delete: { enabled: true } },
    // One registry process, so a fresh upload secret per start is fine (and silences a warning).
    http: { addr: `127.0.0.1:${port}`, secret: crypto.randomBytes(16).toString('hex') },
  };
  fs.writeFileSync(configFile, YAML.stringify(config));
  await clearStalePidFile(pidFile, 'docker-registry');

  const daemon = spawnDaemon('docker-registry', ['serve', configFile], { logFile, cwd: dir });
  fs.writeFileSync(pidFile, `${daemon.pid}\n`);
  const stop = once(async () => {
    await stopPid(daemon.pid, 5000);
    fs.rmSync(pidFile, { force: true });
  });
  try {
    await waitUntil(`registry on ${registry}`, 15_000, async () => (await pingRegistry(registry)) === 'ok', () =>
      daemon.hasExited() ? `docker-registry exited; ${logFile} ends with:\n${logTail(logFile)}` : undefined,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  log(`registry: started on ${registry} (pid ${daemon.pid}, data in ${data})`);
  return { ...reuse, started: true, pid: daemon.pid, stop };
}
