/**
 * A stack of its own with the attacker fixture (test/fixtures/functions/attacker) deployed
 * once per set of limits, its native probe (syscalls.c) compiled once and shipped in each:
 * what the tests that run attacks from inside a deployed function share.
 */
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { cleanupRegistry, createTestDatabase, testEnv, uniquePrefix, type TestDatabase } from './services.ts';
import { REPO_ROOT, runCli, startStack, type TestStack } from './stack.ts';

const exec = promisify(execFile);

/** What a call to the attacker answered; the body parsed as JSON when it is JSON. */
export interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
  text: string;
  instance: string | null;
  start: string | null;
}

export interface AttackerStack<F extends string> {
  readonly prefix: string;
  readonly stack: TestStack;
  readonly db: TestDatabase;
  fnName(fn: F): string;
  /** Calls `/function/<fn>/<attack>`, whatever the status. */
  call(fn: F, attack: string, query?: string | URLSearchParams): Promise<Answer>;
  /** The attack answered 200; returns what it reported. */
  attack(fn: F, attack: string, query?: string | URLSearchParams): Promise<Answer['body']>;
}

/**
 * Registers the file's before/after hooks: a stack with `env`, one attacker function per entry
 * of `functions` (its extra hearth.yaml lines) named `<prefix>-<key>`; `afterStop` runs once
 * the apps have stopped (and released their instances), before the rest is removed.
 */
export function useAttackerStack<F extends string>(opts: {
  name: string;
  functions: Record<F, string>;
  env?: NodeJS.ProcessEnv;
  afterStop?: () => Promise<void>;
}): AttackerStack<F> {
  const prefix = uniquePrefix(opts.name);
  let db: TestDatabase | undefined;
  let stack: TestStack | undefined;
  let workdir: string | undefined;
  const fnName = (fn: F) => `${prefix}-${fn}`;

  const call = async (fn: F, attack: string, query: string | URLSearchParams = ''): Promise<Answer> => {
    const q = query.toString();
    const res = await fetch(`${stack!.gatewayUrl}/function/${fnName(fn)}/${attack}${q ? `?${q}` : ''}`);
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // a plain text answer
    }
    return { status: res.status, body, text: text.length > 2000 ? `${text.slice(0, 2000)}…` : text, instance: res.headers.get('x-hearth-instance'), start: res.headers.get('x-hearth-start') };
  };

  before(async () => {
    db = await createTestDatabase(prefix.replaceAll('-', '_'));
    stack = await startStack({ prefix, databaseUrl: db.url, env: opts.env ?? {} });
    const root = await fs.mkdtemp(path.join(os.tmpdir(), `${prefix}-src-`));
    workdir = root;
    const fixture = path.join(REPO_ROOT, 'test/fixtures/functions/attacker');
    // one build of the native probe, shipped in every function
    const so = path.join(root, 'syscalls.so');
    await exec('gcc', ['-O1', '-Wall', '-shared', '-fPIC', '-o', so, path.join(fixture, 'syscalls.c')]);
    await Promise.all(
      (Object.keys(opts.functions) as F[]).map(async (fn) => {
        const name = fnName(fn);
        const dir = path.join(root, name);
        await fs.cp(fixture, dir, { recursive: true });
        await fs.copyFile(so, path.join(dir, 'syscalls.so'));
        await fs.writeFile(path.join(dir, 'hearth.yaml'), `name: ${name}\nruntime: node\nhandler: index.js\n${opts.functions[fn]}\n`);
        const res = await runCli(['deploy', name], { cwd: root, env: { ...stack!.env, HEARTH_REGISTRY: testEnv().registry } });
        assert.equal(res.code, 0, `deploy ${name}: ${res.stderr}`);
      }),
    );
  });

  after(async () => {
    if (process.env.HEARTH_TEST_DEBUG) console.log(stack?.gateway.output(), stack?.worker.output());
    await stack?.stopApps();
    await opts.afterStop?.();
    await cleanupRegistry(`fn/${prefix}`).catch((err) => console.error('registry cleanup:', err));
    await db?.drop();
    if (stack) await fs.rm(stack.home, { recursive: true, force: true });
    if (workdir) await fs.rm(workdir, { recursive: true, force: true });
  });

  return {
    prefix,
    get stack() {
      return stack!;
    },
    get db() {
      return db!;
    },
    fnName,
    call,
    async attack(fn, name, query = '') {
      const answer = await call(fn, name, query);
      assert.equal(answer.status, 200, `${name}: ${answer.text}`);
      return answer.body;
    },
  };
}
