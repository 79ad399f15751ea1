import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { HearthConfig, RuntimeKind } from '@hearth/core';
import { createRuncSandbox, type RuncSandbox } from '@hearth/runtime';
import type { ImageCache, PreparedImage } from '../image-cache.ts';
import type { Evictable } from './instance-pool.ts';
import type { MemoryBudget } from './memory-budget.ts';

/** Memory a stem cell is started with; specialization sets the function's own limit. */
export const STEM_CELL_MEMORY_MB = 128;

/**
 * How long after a cell is taken its replacement starts. Starting a cell (mounts, `runc run`,
 * node's start-up) takes ~0.3 s of CPU; begun at once, it competes with the specialization
 * and first call of the cell just taken, which on a small machine made those several times
 * slower. By now that call is usually done.
 */
export const REFILL_DELAY_MS = 250;

interface Cell {
  sandbox: RuncSandbox;
  readyAt: number;
}

export interface StemCellPoolOptions {
  config: HearthConfig;
  images: ImageCache;
  budget: MemoryBudget;
  /** Resolves the runtime's base image (`<registry>/hearth/<runtime>:latest`) to a digest. */
  resolveBase(runtime: RuntimeKind): Promise<{ imageRef: string; digest: string } | undefined>;
  onError(err: unknown): void;
  changed?(): void;
}

/**
 * Generic instances per runtime that run the bootstrap with no function code (OpenWhisk's
 * prewarms, Fission's pool manager). A cold call whose image is the runtime's base image plus
 * its own layers takes one and specializes it; the pool refills in the background. Only the
 * node runtime has a bootstrap that can be specialized.
 */
export class StemCellPool {
  private readonly ready = new Map<RuntimeKind, Cell[]>();
  private readonly starting = new Map<RuntimeKind, number>();
  private readonly bases = new Map<RuntimeKind, PreparedImage>();
  private readonly startingCells = new Set<Promise<void>>();
  private readonly refillTimers = new Map<RuntimeKind, NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly opts: StemCellPoolOptions) {}

  static readonly RUNTIMES: readonly RuntimeKind[] = ['node'];

  /** Starts filling every runtime's pool; failures are reported, not thrown (cold starts still work). */
  start(): void {
    if (this.opts.config.stemCellsPerRuntime <= 0) return;
    for (const runtime of StemCellPool.RUNTIMES) this.refill(runtime);
  }

  /**
   * A ready stem cell for a function of `runtime` whose image is the base plus layers of its
   * own, with those layers; undefined when there is none ready or the image does not qualify.
   * Never waits: a call is not made slower than a cold start by waiting for a cell.
   */
  take(runtime: RuntimeKind, image: PreparedImage): { sandbox: RuncSandbox; functionLayers: string[] } | undefined {
    const base = this.bases.get(runtime);
    if (!base) return undefined;
    const functionLayers = extraLayers(base.layers, image.layers);
    if (!functionLayers) return undefined;
    const cell = this.ready.get(runtime)?.shift();
    if (!cell) return undefined;
    // Its memory now belongs to the instance it becomes; the pool took the function's share.
    this.opts.budget.give(STEM_CELL_MEMORY_MB);
    this.refillSoon(runtime);
    this.opts.changed?.();
    return { sandbox: cell.sandbox, functionLayers };
  }

  /** Idle cells, which an instance that needs memory may stop. */
  evictables(): Evictable[] {
    const out: Evictable[] = [];
    for (const cells of this.ready.values()) {
      for (const cell of cells) {
        out.push({
          lastUsedAt: cell.readyAt,
          memoryMb: STEM_CELL_MEMORY_MB,
          evict: async () => {
            const at = cells.indexOf(cell);
            if (at < 0) return;
            cells.splice(at, 1);
            await this.opts.budget.evicting(STEM_CELL_MEMORY_MB, this.stopCell(cell.sandbox));
            this.opts.changed?.();
          },
        });
      }
    }
    return out;
  }

  counts(): Record<string, { ready: number; starting: number }> {
    const out: Record<string, { ready: number; starting: number }> = {};
    for (const runtime of StemCellPool.RUNTIMES) out[runtime] = { ready: this.ready.get(runtime)?.length ?? 0, starting: this.starting.get(runtime) ?? 0 };
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.refillTimers.values()) clearTimeout(timer);
    this.refillTimers.clear();
    // A cell still starting is stopped as soon as it is up (see refill); wait for that too.
    await Promise.all([...this.startingCells]);
    const cells = [...this.ready.values()].flat();
    this.ready.clear();
    await Promise.all(cells.map((c) => this.stopCell(c.sandbox)));
  }

  /** A cell never specialized: its log holds nothing of any function's. */
  private async stopCell(sandbox: RuncSandbox): Promise<void> {
    await sandbox.stop().catch(this.opts.onError);
    await fs.rm(stemCellLogPath(this.opts.config, sandbox.id), { force: true });
  }

  /** refill() after REFILL_DELAY_MS; cells taken meanwhile are replaced by that one refill. */
  private refillSoon(runtime: RuntimeKind): void {
    if (this.closed || this.refillTimers.has(runtime)) return;
    const timer = setTimeout(() => {
      this.refillTimers.delete(runtime);
      this.refill(runtime);
    }, REFILL_DELAY_MS);
    timer.unref();
    this.refillTimers.set(runtime, timer);
  }

  private refill(runtime: RuntimeKind): void {
    const want = this.opts.config.stemCellsPerRuntime;
    const have = (this.ready.get(runtime)?.length ?? 0) + (this.starting.get(runtime) ?? 0);
    for (let i = have; i < want && !this.closed; i++) {
      // Cells only ever use spare memory: they never evict anything.
      if (!this.opts.budget.tryTake(STEM_CELL_MEMORY_MB)) return;
      this.starting.set(runtime, (this.starting.get(runtime) ?? 0) + 1);
      const started = this.startCell(runtime).then(
        (cell) => {
          this.starting.set(runtime, (this.starting.get(runtime) ?? 1) - 1);
          if (this.closed) {
            this.opts.budget.give(STEM_CELL_MEMORY_MB);
            // Returned, so close() (which waits for starting cells) waits for this stop too.
            return this.stopCell(cell.sandbox);
          }
          const list = this.ready.get(runtime) ?? [];
          list.push(cell);
          this.ready.set(runtime, list);
          this.opts.changed?.();
        },
        (err: unknown) => {
          this.starting.set(runtime, (this.starting.get(runtime) ?? 1) - 1);
          this.opts.budget.give(STEM_CELL_MEMORY_MB);
          this.opts.onError(new Error(`stem cell for ${runtime} did not start: ${(err as Error).message}`));
        },
      );
      this.startingCells.add(started);
      void started.finally(() => this.startingCells.delete(started));
    }
  }

  private async startCell(runtime: RuntimeKind): Promise<Cell> {
    const { config } = this.opts;
    let base = this.bases.get(runtime);
    if (!base) {
      const ref = await this.opts.resolveBase(runtime);
      if (!ref) throw new Error(`no base image for ${runtime}`);
      base = await this.opts.images.prepare(ref.imageRef, ref.digest);
      this.bases.set(runtime, base);
    }
    const id = `${config.instancePrefix}stem-${runtime}-${randomBytes(4).toString('hex')}`;
    const sandbox = createRuncSandbox({
      home: config.home,
      id,
      layers: base.layers,
      imageConfig: base.config,
      limits: { memoryMb: STEM_CELL_MEMORY_MB, cpu: 1 },
      logPath: stemCellLogPath(config, id),
      stemCell: true,
    });
    await sandbox.start();
    // Opens the connection the specialization will use (kept alive), so a call does not
    // wait for it; a cell not yet specialized answers 503.
    await sandbox.invoke({ method: 'GET', path: '/', query: '', headers: {}, body: Buffer.alloc(0) }, { timeoutMs: 5000 }).catch(async (err: unknown) => {
      await sandbox.stop().catch(() => undefined);
      throw err;
    });
    return { sandbox, readyAt: Date.now() };
  }
}

/** Where a stem cell's output goes; once specialized the file also appears under the function's logs. */
export const stemCellLogPath = (config: HearthConfig, id: string) => path.join(config.home, 'logs', '_stem-cells', `${id}.log`);

/** The function's own layers when `base` is a prefix of `image`'s layers, else undefined. */
export function extraLayers(base: string[], image: string[]): string[] | undefined {
  if (image.length <= base.length) return undefined;
  for (let i = 0; i < base.length; i++) if (base[i] !== image[i]) return undefined;
  return image.slice(base.length);
}
