/**
 * The startup comparison of issue 5, recorded: `hearth bench startup` of a node hello function
 * on a stack of its own (container, vm, stem cell), with `runc run` and, with `--docker`,
 * `docker run` of the same image as references, all in one run. With `--docker` a Docker engine
 * of its own is started (Debian's docker.io: `dockerd --iptables=false --bridge=none` on a
 * socket and data root in a temporary folder) and stopped after.
 *
 *   npx tsx bench/startup.ts -n 10 [--docker]
 *
 * Writes bench/results/startup.{md,json,svg}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { cleanupInstances, cleanupVmInstances } from '@hearth/runtime';
import { fetchVmKernel } from '../infra/images/vm-kernel.ts';
import { cleanupRegistry, createTestDatabase, deleteRedisPrefix, testEnv, uniquePrefix } from '../test/helpers/services.ts';
import { runCli, startStack } from '../test/helpers/stack.ts';

const N = Number(process.argv[process.argv.indexOf('-n') + 1]) || 10;
const withDocker = process.argv.includes('--docker');
const results = path.join(path.dirname(new URL(import.meta.url).pathname), 'results');
const vmHome = process.env.HEARTH_VM_HOME || '/tmp/hearth-test-cache';
// Short: the vm socket path under the stack's home may hold at most 107 bytes.
const prefix = uniquePrefix('sub');
const step = (m: string) => process.stderr.write(`[bench] ${m}\n`);

/** A Docker engine of our own on a socket in `dir`; resolves once it answers. */
async function startDockerd(dir: string): Promise<{ host: string; child: ChildProcess }> {
  const host = `unix://${path.join(dir, 'docker.sock')}`;
  const child = spawn(
    'dockerd',
    ['--iptables=false', '--ip6tables=false', '--bridge=none', '--host', host, '--data-root', path.join(dir, 'data'), '--exec-root', path.join(dir, 'exec'), '--pidfile', path.join(dir, 'docker.pid')],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const probe = spawn('docker', ['--host', host, 'version'], { stdio: 'ignore' });
      probe.on('exit', (code) => resolve(code === 0));
    });
    if (ok) return { host, child };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`dockerd did not answer:\n${log}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

await fetchVmKernel({ home: vmHome });
step('starting a stack');
const db = await createTestDatabase(prefix.replaceAll('-', '_'));
const stack = await startStack({ prefix, databaseUrl: db.url, env: { HEARTH_STEM_CELLS: '1', HEARTH_VM_HOME: vmHome } });
const work = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-`));
let dockerd: { host: string; child: ChildProcess } | undefined;
let pushed: string | undefined;
try {
  const name = `${prefix}-hello`;
  const init = await runCli(['init', name, '--runtime', 'node'], { cwd: work, env: stack.env });
  if (init.code !== 0) throw new Error(init.stderr);
  const deployed = await runCli(['deploy', name], { cwd: work, env: { ...stack.env, HEARTH_REGISTRY: testEnv().registry } });
  if (deployed.code !== 0) throw new Error(deployed.stderr);
  pushed = deployed.stdout.split('\n').find((l) => /@sha256:/.test(l))!.trim();

  if (withDocker) {
    step('starting dockerd');
    dockerd = await startDockerd(path.join(work, 'docker'));
  }
  const out = path.join(work, 'out');
  step(`hearth bench startup ${name} --isolation container,vm,stemcell -n ${N}`);
  const res = await runCli(['bench', 'startup', name, '--isolation', 'container,vm,stemcell', '-n', String(N), '--out', out], {
    cwd: work,
    env: { ...stack.env, ...(dockerd ? { DOCKER_HOST: dockerd.host } : {}) },
  });
  process.stderr.write(res.stderr);
  if (res.code !== 0) throw new Error(`hearth bench startup exited ${res.code}`);
  const table = res.stdout.replace(/\nWrote .*\n?$/, '\n');
  await fs.mkdir(results, { recursive: true });
  await fs.copyFile(path.join(out, 'startup.json'), path.join(results, 'startup.json'));
  await fs.copyFile(path.join(out, 'startup.svg'), path.join(results, 'startup.svg'));
  const md = `# Startup: container, microVM and stem cell, from the platform's own traces

\`hearth bench startup\` of a node hello function (\`hearth init --runtime node\`), ${N} measured starts per
isolation after one unmeasured start that pulls, unpacks and caches the image. Each start is a new version of a
bench copy with no instance left, called once through gateway → queue → worker → pool → sandbox; its phases are
read from its trace. \`container\` and \`vm\` are cold starts (the function's image as \`runtime: image\`, which
no stem cell serves); \`stem cell\` is the path a node function's first call takes by default.

![startup chart](startup.svg)

\`\`\`
${table.trimEnd()}
\`\`\`

How to read it: each phase is its own time (pool.acquire without the cold-start phases below it);
"(gateway, worker)" is the call's time outside every phase; "phases / total" is how much of the call the
phases account for. The references run the same image outside Hearth in the same run: \`runc run\` of the
bundle Hearth writes, and \`docker run\` of the image pulled from the registry (a dockerd of the bench's own,
\`--iptables=false --bridge=none\`), each until the bootstrap answers one request on its socket.

Raw spans of every start: startup.json. Run it again with \`npx tsx bench/startup.ts -n ${N}${withDocker ? ' --docker' : ''}\`.
`;
  await fs.writeFile(path.join(results, 'startup.md'), md);
  console.log(md);
} finally {
  if (dockerd) {
    dockerd.child.kill('SIGTERM');
    await new Promise((r) => dockerd!.child.once('exit', r));
  }
  await stack.stopApps();
  await cleanupVmInstances(stack.home, `${prefix}-`);
  await cleanupInstances(stack.home, `${prefix}-`);
  await cleanupRegistry(`fn/${prefix}`, pushed ? [pushed] : []).catch(() => {});
  await db.drop();
  await deleteRedisPrefix(prefix);
  await fs.rm(stack.home, { recursive: true, force: true });
  await fs.rm(work, { recursive: true, force: true });
}
