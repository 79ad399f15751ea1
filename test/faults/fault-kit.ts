/**
 * Helpers for the fault tests: private Redis, Postgres and registry servers that a test may
 * stop and start again (the shared dev services are never touched), deploys against any
 * registry, and a look at the runc containers a test left.
 */
import { runcContainers } from '../runtime/fixtures.ts';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { RegistryClient } from '@hearth/oci';
import { ensurePostgres } from '../../infra/services/postgres.ts';
import { ensureRedis } from '../../infra/services/redis.ts';
import { ensureRegistry } from '../../infra/services/registry.ts';
import { isAlive, waitForExit } from '../../infra/services/daemon.ts';
import type { LocalService } from '../../infra/services/service.ts';
import { migrate } from '../../infra/prepare.ts';
import { testEnv } from '../helpers/services.ts';
import { REPO_ROOT, freePort, runCli, type TestStack } from '../helpers/stack.ts';

const quiet = (line: string) => {
  if (process.env.HEARTH_TEST_DEBUG) console.log(`[faults] ${line}`);
};

/** A server of our own on a free loopback port, with its data under `home`; stop() and start() keep port and data. */
export interface PrivateService {
  /** REDIS_URL, DATABASE_URL or HEARTH_REGISTRY, as the apps want it. */
  address: string;
  home: string;
  pid(): number | undefined;
  /** Stops the server (SIGTERM, or SIGKILL with `crash`), keeping its data. */
  stop(opts?: { crash?: boolean }): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** stop(), then removes its data folder. */
  destroy(): Promise<void>;
}

type Ensure = (opts: { home: string; env: NodeJS.ProcessEnv; log: (line: string) => void }) => Promise<LocalService>;

async function privateService(name: string, ensure: Ensure, envOf: (port: number) => Record<string, string>, address: (port: number) => string): Promise<PrivateService> {
  // Short: Postgres' Unix socket (and its path limit) lives below it.
  const home = await fs.mkdtemp(path.join(os.tmpdir(), `hf-${name}-`));
  const port = await freePort();
  const env = { ...process.env, ...envOf(port) };
  let service: LocalService | undefined;
  const start = async () => {
    service = await ensure({ home, env, log: quiet });
    if (!service.started) throw new Error(`${name}: something already answered on port ${port}; a private server was expected`);
  };
  const stop = async (opts: { crash?: boolean } = {}) => {
    const s = service;
    service = undefined;
    if (!s) return;
    if (opts.crash && s.pid !== undefined && isAlive(s.pid)) {
      process.kill(s.pid, 'SIGKILL');
      await waitForExit(s.pid, 10_000);
    }
    await s.stop();
  };
  await start();
  return {
    address: address(port),
    home,
    pid: () => service?.pid,
    stop,
    start,
    destroy: async () => {
      await stop();
      await fs.rm(home, { recursive: true, force: true });
    },
  };
}

/** redis-server with its append-only file (appendfsync everysec) in its own folder. */
export function privateRedis(): Promise<PrivateService> {
  const url = (port: number) => `redis://127.0.0.1:${port}`;
  return privateService('redis', ensureRedis, (port) => ({ REDIS_URL: url(port) }), url);
}

/** A Postgres cluster of our own, database `hearth` migrated. */
export async function privatePostgres(): Promise<PrivateService> {
  const url = (port: number) => `postgres://hearth:hearth@127.0.0.1:${port}/hearth`;
  const pg = await privateService('pg', ensurePostgres, (port) => ({ DATABASE_URL: url(port) }), url);
  await migrate(pg.address);
  return pg;
}

/** CNCF Distribution of our own, holding a copy of the dev registry's `hearth/node:latest`. */
export async function privateRegistry(): Promise<PrivateService> {
  const registry = await privateService('reg', ensureRegistry, (port) => ({ HEARTH_REGISTRY: `127.0.0.1:${port}` }), (port) => `127.0.0.1:${port}`);
  try {
    await copyImage(testEnv().registry, registry.address, 'hearth/node', 'latest');
  } catch (err) {
    await registry.destroy();
    throw err;
  }
  return registry;
}

/**
 * Copies one image (manifest, config and layers) between registries. The base image was
 * built once into the dev registry; rebuilding it from Debian packages per test would only be slow.
 */
export async function copyImage(from: string, to: string, repository: string, tag: string): Promise<void> {
  const source = new RegistryClient({ registry: from, insecure: true });
  const target = new RegistryClient({ registry: to, insecure: true });
  const { bytes, mediaType, manifest } = await source.getManifest(repository, tag);
  const m = manifest as { config: { digest: string }; layers: { digest: string }[] };
  for (const digest of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
    if ((await target.hasBlob(repository, digest)) !== undefined) continue;
    const chunks: Buffer[] = [];
    for await (const chunk of await source.getBlob(repository, digest)) chunks.push(chunk as Buffer);
    await target.uploadBlob(repository, digest, Buffer.concat(chunks));
  }
  await target.putManifest(repository, tag, bytes, mediaType);
}

/**
 * `hearth deploy` of a fixture under test/fixtures/functions as `name`, pushed to `registry`;
 * returns the image pinned by digest and the source folder (remove it at the end).
 */
export async function deployFixture(
  stack: TestStack,
  fixture: 'jobs' | 'pool' | 'echo',
  name: string,
  opts: { registry?: string; yaml?: string } = {},
): Promise<{ image: string; workdir: string }> {
  const workdir = await fs.mkdtemp(path.join(os.tmpdir(), `${stack.prefix}-src-`));
  const dir = path.join(workdir, name);
  await fs.cp(path.join(REPO_ROOT, 'test/fixtures/functions', fixture), dir, { recursive: true });
  const yaml = await fs.readFile(path.join(dir, 'hearth.yaml'), 'utf8');
  await fs.writeFile(path.join(dir, 'hearth.yaml'), yaml.replace(`name: ${fixture}`, `name: ${name}`) + (opts.yaml ?? ''));
  const res = await runCli(['deploy', name], { cwd: workdir, env: { ...stack.env, HEARTH_REGISTRY: opts.registry ?? testEnv().registry } });
  if (res.code !== 0) throw new Error(`hearth deploy ${name} failed (${res.code}):\n${res.stderr}\n${res.stdout}`);
  const image = res.stdout.split('\n').map((l) => l.trim()).find((l) => /@sha256:[a-f0-9]{64}$/.test(l));
  if (!image) throw new Error(`no ref@sha256 line in:\n${res.stdout}`);
  return { image, workdir };
}

/** Ids of the runc containers whose id starts with `prefix`. */
export async function containers(prefix: string): Promise<{ id: string; status: string }[]> {
  return runcContainers().filter((c) => c.id.startsWith(prefix));
}

/** What a fetch got: status, headers we look at, the body as text and as JSON when it parses. */
export interface Answer {
  status: number;
  ms: number;
  start: string | null;
  instance: string | null;
  /** X-Call-Id. */
  callId: string | null;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/**
 * A fetch that never throws for a status and measures how long it took; a transport error
 * (or no answer within `timeoutMs`, default 120 s) becomes status 0.
 */
export async function request(url: string, init: RequestInit = {}, timeoutMs = 120_000): Promise<Answer> {
  const t0 = Date.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), ...init });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, ms: Date.now() - t0, start: res.headers.get('x-hearth-start'), instance: res.headers.get('x-hearth-instance'), callId: res.headers.get('x-call-id'), text, json };
  } catch (err) {
    return { status: 0, ms: Date.now() - t0, start: null, instance: null, callId: null, text: (err as Error).message, json: undefined };
  }
}

/** One line for assertion messages. */
export const show = (a: Answer) => `${a.status} after ${a.ms} ms: ${a.text.slice(0, 400)}`;
