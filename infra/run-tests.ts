/**
 * `npm test [-- files or folders] [-- node --test flags]`: makes sure the local services
 * run (starting only what is missing), migrates, pushes the base images, then runs the
 * test files one at a time with Node's test runner. Stops only the services it started
 * and exits with the runner's exit code.
 */
import { spawn } from 'node:child_process';
import { ensureBaseImages, ensureVmKernel, migrate } from './prepare.ts';
import { TEST_FILE_PATTERNS, findTestFiles } from './test-files.ts';
import { REPO_ROOT, startServices } from './services/index.ts';

const log = (line: string) => process.stderr.write(`[hearth] ${line}\n`);

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const flags = args.filter((a) => a.startsWith('-'));
  const files = findTestFiles(REPO_ROOT, args.filter((a) => !a.startsWith('-')));
  if (files.length === 0) {
    log(`no test files found (looked for ${TEST_FILE_PATTERNS.join(', ')})`);
    return 1;
  }

  // A signal stops the step under way; the finally below then stops our services.
  let interrupted: NodeJS.Signals | undefined;
  let current: { kill(sig: NodeJS.Signals): unknown } | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = sig;
    log(`${sig}: stopping`);
    current?.kill(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const services = await startServices({ log });
  try {
    if (interrupted) return 130;
    // Test stacks have homes of their own; the vm kernel is fetched once, into this one.
    const env = { ...process.env, ...services.env, HEARTH_REPO_ROOT: REPO_ROOT, HEARTH_VM_HOME: process.env.HEARTH_VM_HOME || services.env.HEARTH_HOME! };
    await migrate(services.env.DATABASE_URL!);
    await ensureBaseImages(env, log, (child) => (current = child.child));
    if (interrupted) return 130;
    await ensureVmKernel(env, log, (child) => (current = child.child));
    if (interrupted) return 130;
    log(`running ${files.length} test file${files.length === 1 ? '' : 's'}`);
    const runner = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...flags, ...files], {
      cwd: REPO_ROOT,
      env,
      stdio: 'inherit',
    });
    current = runner;
    return await new Promise<number>((resolve) => {
      runner.once('error', (err) => {
        log(`could not run the tests: ${err.message}`);
        resolve(1);
      });
      runner.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
    });
  } finally {
    await services.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`error: ${(err as Error).message}`);
    process.exit(1);
  },
);
