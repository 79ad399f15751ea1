/**
 * Groups events that arrive while earlier calls are in flight into one call, like a
 * database's group commit. With no call in flight an event goes out at once, so a lone
 * event waits for nothing. While calls are in flight, a further call goes out only with a
 * full batch (`size` events); the rest wait at most until the calls in flight end. Sending
 * every event the moment a slot frees would split a busy queue into calls of one or two
 * events, each paying a whole round trip.
 */
export class EventBatcher<T, R> {
  private readonly pending: { item: T; resolve: (r: R) => void; reject: (err: unknown) => void }[] = [];
  private inFlight = 0;

  /**
   * `run` answers a batch with one result per item, in order; if it throws, every item of
   * the batch gets the error. `limits` is read at each dispatch, so a redeploy that changes
   * the batch size or concurrency applies to the next batch.
   */
  constructor(
    private readonly run: (items: T[]) => Promise<R[]>,
    private readonly limits: () => { size: number; calls: number },
  ) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    const limits = this.limits();
    const size = Math.max(1, limits.size);
    while (this.inFlight < limits.calls && this.pending.length > 0 && (this.inFlight === 0 || this.pending.length >= size)) {
      const batch = this.pending.splice(0, size);
      this.inFlight += 1;
      this.run(batch.map((b) => b.item))
        .then(
          (results) => batch.forEach((b, i) => b.resolve(results[i]!)),
          (err) => batch.forEach((b) => b.reject(err)),
        )
        .finally(() => {
          this.inFlight -= 1;
          this.dispatch();
        });
    }
  }
}
