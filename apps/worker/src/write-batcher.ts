/**
 * Gathers rows and writes them together: one statement per batch instead of one committed
 * insert per call (each commit waits for Postgres' WAL fsync, ~1 ms here, which would
 * bound a queue consumer to a few hundred jobs a second). A batch goes out when it holds
 * `maxRows` or `maxDelayMs` after its first row, whichever comes first. 100 ms, not less: at a
 * few hundred queue jobs a second, 20 ms made batches of ~6 rows and cost Postgres about
 * 0.4 ms of CPU per job on top of the worker's own (bench/queue-throughput.ts).
 *
 * Use it only for rows whose loss in a crash is acceptable (the record of something
 * BullMQ already holds); flush() before shutdown.
 */
/** 1 + 2 + 4 + 8 + 16 + 32 s of retries: a Postgres restart is over well within it. */
const RETRIES = 6;

export class WriteBatcher<T> {
  private rows: T[] = [];
  private timer?: NodeJS.Timeout;
  private inFlight = new Set<Promise<void>>();
  private closing = false;

  constructor(
    private readonly write: (rows: T[]) => Promise<void>,
    private readonly onError: (err: unknown) => void,
    private readonly opts: { maxRows: number; maxDelayMs: number } = { maxRows: 500, maxDelayMs: 100 },
  ) {}

  add(row: T): void {
    this.rows.push(row);
    if (this.rows.length >= this.opts.maxRows) this.send();
    else this.timer ??= setTimeout(() => this.send(), this.opts.maxDelayMs);
  }

  private send(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.rows.length === 0) return;
    const rows = this.rows;
    this.rows = [];
    const p = this.writeWithRetry(rows);
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /**
   * A failed batch (Postgres restarting) is tried again, 1 s, 2 s, 4 s … up to about a
   * minute later, then dropped with its error; rows added meanwhile go in batches of their own.
   */
  private async writeWithRetry(rows: T[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.write(rows);
        return;
      } catch (err) {
        if (attempt >= RETRIES || this.closing) {
          this.onError(err);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** attempt).unref());
      }
    }
  }

  /** Writes what is gathered and waits for every batch in flight (which no longer retries). */
  async flush(): Promise<void> {
    this.closing = true;
    this.send();
    await Promise.all(this.inFlight);
  }
}
