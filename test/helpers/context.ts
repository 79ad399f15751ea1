/**
 * One object per test file that hands out prefixed resources and removes them all at the
 * end: `const ctx = useTestContext('gateway');` registers its cleanup with node:test's after().
 */
import { after } from 'node:test';
import {
  cleanupRegistry,
  createTestDatabase,
  deleteRedisPrefix,
  testEnv,
  uniquePrefix,
  type TestDatabase,
  type TestEnv,
} from './services.ts';

export interface TestContext {
  /** `test-<name>-<random6>`; use it for container ids, instance folders and anything else a test creates. */
  prefix: string;
  env: TestEnv;
  /** BullMQ key prefix for this file (HEARTH_QUEUE_PREFIX); its keys are deleted at cleanup. */
  queuePrefix: string;
  /** Registry repository prefix (e.g. `${repoPrefix}/hello`); its manifests are deleted at cleanup. */
  repoPrefix: string;
  /** A migrated database of this file's own, created on first call and dropped at cleanup. */
  database(): Promise<TestDatabase>;
  /** Remembers an image pushed under repoPrefix, so cleanup deletes it even when it has no tag. */
  trackImage(ref: string): void;
  /** Runs `fn` at cleanup, before the built-in steps, last registered first. */
  defer(fn: () => unknown): void;
  /** Runs everything registered; reports all failures together. May be called twice. */
  cleanup(): Promise<void>;
}

export function createTestContext(name: string): TestContext {
  const prefix = uniquePrefix(name);
  const env = testEnv();
  const queuePrefix = prefix;
  const repoPrefix = `test/${prefix}`;
  const images: string[] = [];
  const deferred: (() => unknown)[] = [];
  let database: Promise<TestDatabase> | undefined;
  let cleaning: Promise<void> | undefined;

  const cleanup = async () => {
    const errors: unknown[] = [];
    const attempt = async (fn: () => unknown) => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };
    for (const fn of deferred.reverse()) await attempt(fn);
    if (database) await attempt(async () => (await database!).drop());
    await attempt(() => deleteRedisPrefix(queuePrefix, env.redisUrl));
    await attempt(() => cleanupRegistry(repoPrefix, images, env.registry));
    if (errors.length > 0) throw new AggregateError(errors, `cleanup of ${prefix} failed: ${errors.map((e) => (e as Error).message).join('; ')}`);
  };

  return {
    prefix,
    env,
    queuePrefix,
    repoPrefix,
    database: () => (database ??= createTestDatabase(prefix.replaceAll('-', '_'), env.databaseUrl)),
    trackImage: (ref) => void images.push(ref),
    defer: (fn) => void deferred.push(fn),
    cleanup: () => (cleaning ??= cleanup()),
  };
}

/** createTestContext() with its cleanup registered as an after() hook of the current file or suite. */
export function useTestContext(name: string): TestContext {
  const ctx = createTestContext(name);
  after(() => ctx.cleanup());
  return ctx;
}
