/**
 * The setup most runtime tests share: a home under a test prefix, the node base image pulled
 * from the dev registry, one function's code as a layer, and sandboxes of it that are all
 * stopped, cleaned up and checked for leftovers when the file's tests are done.
 */
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { cleanupInstances, type RuncSandbox, type SandboxOptions } from '@hearth/runtime';
import { uniquePrefix } from '../helpers/services.ts';
import { leftoversWithPrefix, nodeCode, prefixedHome, pullBase, trackedSandbox, type PulledBase } from './fixtures.ts';

export interface NodeFunctionKit {
  readonly home: string;
  readonly prefix: string;
  readonly base: PulledBase;
  /** The unpacked layer holding /function/index.js. */
  readonly code: string;
  /** Options of a new sandbox of the function, with the next id under the prefix. */
  options(over?: Partial<SandboxOptions>): SandboxOptions;
  /** A new sandbox of the function, stopped after the file's tests. */
  sandbox(over?: Partial<SandboxOptions>): RuncSandbox;
  /** Stops every sandbox made so far. */
  stopAll(): Promise<void>;
}

/**
 * Registers the file's before/after hooks and returns the kit they fill. `setup` runs after
 * the code layer exists (to add files to it); `limits` are the sandboxes' defaults.
 */
export function useNodeFunction(opts: {
  name: string;
  handler: string;
  limits?: SandboxOptions['limits'];
  setup?: (kit: NodeFunctionKit) => Promise<void>;
  /** Extra checks once every sandbox is gone. */
  afterAll?: (kit: NodeFunctionKit) => Promise<void>;
}): NodeFunctionKit {
  let home = '';
  let prefix = '';
  let base: PulledBase | undefined;
  let code = '';
  let n = 0;
  const sandboxes: RuncSandbox[] = [];
  const kit: NodeFunctionKit = {
    get home() {
      return home;
    },
    get prefix() {
      return prefix;
    },
    get base() {
      return base!;
    },
    get code() {
      return code;
    },
    options(over = {}) {
      const id = over.id ?? `${prefix}-${++n}`;
      return {
        home,
        id,
        layers: [...base!.layers, code],
        imageConfig: base!.imageConfig,
        env: { HEARTH_HANDLER: '/function/index.js' },
        limits: opts.limits ?? { memoryMb: 128, cpu: 1 },
        logPath: path.join(home, 'logs', `${id}.log`),
        ...over,
      };
    },
    sandbox(over = {}) {
      return trackedSandbox(sandboxes, kit.options(over));
    },
    async stopAll() {
      await Promise.allSettled(sandboxes.map((s) => s.stop()));
    },
  };

  before(async () => {
    prefix = uniquePrefix(opts.name);
    home = await prefixedHome(prefix);
    base = await pullBase(home, 'node');
    code = await nodeCode(home, 'fn', opts.handler);
    await opts.setup?.(kit);
  });

  after(async () => {
    await kit.stopAll();
    await cleanupInstances(home, `${prefix}-`);
    assert.deepEqual(await leftoversWithPrefix(home, `${prefix}-`), []);
    await opts.afterAll?.(kit);
    await fs.rm(home, { recursive: true, force: true });
  });

  return kit;
}
