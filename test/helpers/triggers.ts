/**
 * Helpers for the async, queue-trigger and cron tests: deploy the `jobs` fixture once and
 * redeploy its image with other specs, start extra workers, read which runs happened from
 * the functions' logs, and clean up what a SIGKILLed worker left.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { RegistryClient, parseReference } from '@hearth/oci';
import { deleteRedisPrefix, testEnv } from './services.ts';
import { REPO_ROOT, runCli, startApp, type AppProcess, type TestStack } from './stack.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a truthy value; fails naming `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T> | T, timeoutMs = 20_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

/**
 * Builds and pushes the `jobs` fixture as `name` with the real CLI (`hearth deploy`) and
 * returns its image pinned by digest; later specs reuse the image through the API.
 */
export async function deployJobsFixture(stack: TestStack, name: string, extraYaml = ''): Promise<{ image: string; workdir: string }> {
  const workdir = await fs.mkdtemp(path.join(os.tmpdir(), `${stack.prefix}-src-`));
  const dir = path.join(workdir, name);
  await fs.cp(path.join(REPO_ROOT, 'test/fixtures/functions/jobs'), dir, { recursive: true });
  const yaml = await fs.readFile(path.join(dir, 'hearth.yaml'), 'utf8');
  await fs.writeFile(path.join(dir, 'hearth.yaml'), yaml.replace('name: jobs', `name: ${name}`) + extraYaml);
  const res = await runCli(['deploy', name], { cwd: workdir, env: { ...stack.env, HEARTH_REGISTRY: testEnv().registry } });
  if (res.code !== 0) throw new Error(`hearth deploy ${name} failed (${res.code}):\n${res.stderr}\n${res.stdout}`);
  const image = res.stdout.split('\n').map((l) => l.trim()).find((l) => /@sha256:[a-f0-9]{64}$/.test(l));
  if (!image) throw new Error(`no ref@sha256 line in:\n${res.stdout}`);
  return { image, workdir };
}

/** Deletes a pushed image's manifest. */
export async function deleteImage(image: string): Promise<void> {
  const ref = parseReference(image);
  await new RegistryClient({ registry: ref.registry, insecure: true }).deleteManifest(ref.repository, ref.digest!).catch(() => {});
}

/** PUT /system/functions/:name with the `jobs` fixture's spec plus `spec`. */
export async function putFunction(stack: TestStack, image: string, spec: Record<string, unknown> & { name: string }): Promise<void> {
  const res = await fetch(`${stack.gatewayUrl}/system/functions/${spec.name}`, {
    method: 'PUT',
    headers: { ...stack.authHeaders, 'content-type': 'application/json' },
    body: JSON.stringify({ image, spec: { runtime: 'node', handler: 'index.js', memoryMb: 128, timeoutMs: 8000, ...spec } }),
  });
  if (!res.ok) throw new Error(`PUT ${spec.name}: ${res.status} ${await res.text()}`);
}

/** A second (third, …) worker on the stack's Redis, database and queues, with its own home and instance prefix. */
export async function startExtraWorker(stack: TestStack, suffix: string, env: NodeJS.ProcessEnv = {}): Promise<{ worker: AppProcess; home: string; env: NodeJS.ProcessEnv }> {
  // Short: the invoke socket lives at <home>/instances/<id>/rt/host/invoke.sock, and a Unix
  // socket path may hold at most 108 bytes.
  const home = await fs.mkdtemp(path.join(os.tmpdir(), `${stack.prefix}${suffix}-`));
  // `<prefix><suffix>-`, not `<prefix>-<suffix>-`: a worker cleans up every id that starts
  // with its own prefix, so no worker's prefix may start another's.
  const workerEnv = { ...stack.env, HEARTH_HOME: home, HEARTH_INSTANCE_PREFIX: `${stack.prefix}${suffix}-`, ...env };
  const worker = await startApp('worker', workerEnv, /worker ready/);
  return { worker, home, env: workerEnv };
}

/**
 * Starts and stops a worker with the env of one that was SIGKILLed: a worker removes what
 * its predecessor with the same instance prefix left (containers, mounts, folders) at start.
 */
export async function cleanupKilledWorker(env: NodeJS.ProcessEnv): Promise<void> {
  const worker = await startApp('worker', env, /worker ready/);
  await worker.stop();
}

export interface RunLine {
  key: string;
  pid: number;
  count: number;
  home: string;
}

/** Every line the function printed, with the worker home it ran under. */
async function readLogLines(homes: string[], fnName: string): Promise<{ line: string; home: string }[]> {
  const lines: { line: string; home: string }[] = [];
  for (const home of homes) {
    const dir = path.join(home, 'logs', fnName);
    for (const f of await fs.readdir(dir).catch(() => [] as string[])) {
      const text = await fs.readFile(path.join(dir, f), 'utf8').catch(() => '');
      for (const line of text.split('\n')) lines.push({ line: line.trim(), home });
    }
  }
  return lines;
}

/** The size of each batch the `jobs` fixture got (its `batch <size> <pid>` lines), across the given worker homes. */
export async function readBatchSizes(homes: string[], fnName: string): Promise<number[]> {
  return (await readLogLines(homes, fnName)).flatMap(({ line }) => {
    const m = /^batch (\d+) \d+$/.exec(line);
    return m ? [Number(m[1])] : [];
  });
}

/** Every `run <key> <pid> <count>` line the function printed, across the given worker homes. */
export async function readRuns(homes: string[], fnName: string): Promise<RunLine[]> {
  return (await readLogLines(homes, fnName)).flatMap(({ line, home }) => {
    const m = /^run (\S+) (\d+) (\d+)$/.exec(line);
    return m ? [{ key: m[1]!, pid: Number(m[2]), count: Number(m[3]), home }] : [];
  });
}

/** Waits until a BullMQ queue (default prefix) has `n` workers attached, as reported by Redis. */
export async function waitForConsumers(queue: Queue, n: number, timeoutMs = 20_000): Promise<void> {
  await waitFor(`${n} consumer(s) on queue ${queue.name}`, async () => (await queue.getWorkers()).length === n, timeoutMs, 200);
}

/** Removes a trigger queue's keys (BullMQ's default prefix). */
export const deleteTriggerQueue = (name: string) => deleteRedisPrefix(`bull:${name}`);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const json = (res: Response): Promise<any> => res.json();

export { REPO_ROOT };
