/**
 * Cold first call and warm call latency through the gateway (HTTP → Redis → worker → runc),
 * each beside its floor measured in the same run:
 *  - cold: `runc run` of the same bundle until the bootstrap answers one request on its socket;
 *  - warm: a direct HTTP request on a running instance's socket.
 * Run: `npx tsx bench/walking-skeleton.ts [-n 30]` with the local stack's services up.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cleanupInstances } from '@hearth/runtime';
import { cleanupRegistry, createTestDatabase, deleteRedisPrefix, testEnv, uniquePrefix } from '../test/helpers/services.ts';
import { runCli, startStack } from '../test/helpers/stack.ts';
import { directSocketFloor, prepareFloorImage, runcRunFloor } from './floors.ts';
import { machineLine, ms, summary, timed as timedCall, waitForNoInstances, writeResult } from './lib.ts';

const N = Number(process.argv[process.argv.indexOf('-n') + 1]) || 30;
const WARM_N = Math.max(200, N);
const prefix = uniquePrefix('bench');
const env = testEnv();

let onHang = () => '';
const timed = (fn: () => Promise<unknown>) => timedCall(fn, onHang);

const step = (m: string) => process.stderr.write(`[bench] ${m}\n`);
step('starting a stack');
const db = await createTestDatabase(prefix.replaceAll('-', '_'));
// No stem cells: the cold calls here are true cold starts (bench/warm-pools.ts measures stem cells).
const stack = await startStack({ prefix, databaseUrl: db.url, env: { HEARTH_STEM_CELLS: '0' } });
onHang = () => stack.worker.output().slice(-4000) + stack.gateway.output().slice(-2000);
const work = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
const pushed: string[] = [];
try {
  // Two copies of the `hearth init` hello function: one that never stays warm, one that does.
  const deploy = async (name: string, idleTtlSec: number) => {
    const init = await runCli(['init', name, '--runtime', 'node'], { cwd: work, env: stack.env });
    if (init.code !== 0) throw new Error(init.stderr);
    const yamlPath = path.join(work, name, 'hearth.yaml');
    await fs.appendFile(yamlPath, `scale: { minWarm: 0, maxInstances: 10, idleTtlSec: ${idleTtlSec} }\n`);
    const res = await runCli(['deploy', name], { cwd: work, env: { ...stack.env, HEARTH_REGISTRY: env.registry } });
    if (res.code !== 0) throw new Error(res.stderr);
    const ref = res.stdout.split('\n').find((l) => /@sha256:/.test(l))!.trim();
    pushed.push(ref);
    return ref;
  };
  const coldFn = `${prefix}-cold`;
  const warmFn = `${prefix}-warm`;
  step('deploying');
  await deploy(coldFn, 0);
  const warmRef = await deploy(warmFn, 600);
  const url = (name: string) => `${stack.gatewayUrl}/function/${name}`;

  // Image pull and unpack happen once per worker; take them out of the cold numbers.
  await fetch(url(coldFn), { method: 'POST', body: 'warmup' }).then((r) => r.text());

  step('cold calls');
  const cold: number[] = [];
  for (let i = 0; i < N; i++) {
    // The last call's instance is kept a moment (50 ms) before it stops: a cold call starts from nothing.
    await waitForNoInstances(stack.gatewayUrl, stack.authHeaders, coldFn);
    let start = '';
    cold.push(
      await timed(async () => {
        const res = await fetch(url(coldFn), { method: 'POST', body: 'world' });
        const text = await res.text();
        start = res.headers.get('x-hearth-start') ?? '';
        if (res.status !== 200) throw new Error(`cold call ${i}: status ${res.status}: ${text}`);
      }),
    );
    if (start !== 'cold') throw new Error(`expected a cold start, got ${start}`);
  }

  await fetch(url(warmFn), { method: 'POST', body: 'warmup' }).then((r) => r.text());
  step('warm calls');
  const warm: number[] = [];
  for (let i = 0; i < WARM_N; i++) {
    let status = 0;
    let start = '';
    warm.push(
      await timed(async () => {
        const res = await fetch(url(warmFn), { method: 'POST', body: 'world' });
        const text = await res.text();
        status = res.status;
        if (status !== 200) throw new Error(`warm call ${i}: status ${status}: ${text}`);
        start = res.headers.get('x-hearth-start') ?? '';
      }),
    );
    if (status !== 200 || start !== 'warm') throw new Error(`warm call ${i}: status ${status}, start ${start}`);
    if (process.env.BENCH_DEBUG) step(`warm ${i} ${warm.at(-1)}`);
  }

  step('floors');
  const floorImage = await prepareFloorImage({ imageRef: warmRef, work, prefix });
  const direct = await directSocketFloor(floorImage, WARM_N);
  const runcRun = await runcRunFloor(floorImage, N);

  const s = { cold: summary(cold), runcRun: summary(runcRun), warm: summary(warm), direct: summary(direct) };
  const ratio = (a: number, b: number) => (a / b).toFixed(2);
  const md = `# Walking skeleton: cold and warm call latency

Measured ${new Date().toISOString().slice(0, 10)} on: \`${machineLine()}\`

A node hello function (\`hearth init\`) deployed through the CLI; every call goes through the
gateway, Redis (BullMQ) and the worker. Cold calls run with \`idleTtlSec: 0\`, so each call
starts a new runc container (image already pulled and unpacked: pulls happen once per worker).
Floors are measured in the same run on the same image.

| path | n | p50 | p95 | p99 | floor | floor p50 | floor p95 | ratio p50 |
|---|---|---|---|---|---|---|---|---|
| cold call through the gateway | ${s.cold.n} | ${ms(s.cold.p50)} | ${ms(s.cold.p95)} | ${ms(s.cold.p99)} | \`runc run\` of the same bundle → first answer on its socket | ${ms(s.runcRun.p50)} | ${ms(s.runcRun.p95)} | ${ratio(s.cold.p50, s.runcRun.p50)}× |
| warm call through the gateway | ${s.warm.n} | ${ms(s.warm.p50)} | ${ms(s.warm.p95)} | ${ms(s.warm.p99)} | direct HTTP request on the instance's socket | ${ms(s.direct.p50)} | ${ms(s.direct.p95)} | ${ratio(s.warm.p50, s.direct.p50)}× |

Run it again with \`npx tsx bench/walking-skeleton.ts -n 30\` (needs the local stack's services: \`npm start\` or \`npm test\` brings them up).
`;
  const file = await writeResult('walking-skeleton', md, { n: N, samplesMs: { cold, runcRun, warm, direct }, summary: s });
  console.log(md);
  console.log(`written to ${file}`);
} finally {
  await stack.stopApps();
  // Whatever a failed run left: the workers' and the floors' containers and mounts.
  await cleanupInstances(stack.home, `${prefix}-`);
  await cleanupInstances(path.join(work, 'floor-home'), `${prefix}-`);
  await cleanupRegistry(`fn/${prefix}`, pushed).catch(() => {});
  await db.drop();
  await deleteRedisPrefix(prefix);
  await fs.rm(stack.home, { recursive: true, force: true });
  await fs.rm(work, { recursive: true, force: true });
}
