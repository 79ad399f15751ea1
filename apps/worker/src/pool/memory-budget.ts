/**
 * The memory a worker's instances may hold together: each instance counts its `memoryMb`
 * (its cgroup limit, the most it can use) from the moment it is planned until it has stopped.
 */
export class MemoryBudget {
  private used = 0;
  /** Memory held by instances being stopped to make room: free soon, not yet. */
  private freeing = 0;

  constructor(readonly totalMb: number) {}

  get usedMb(): number {
    return this.used;
  }

  /** Takes `mb` when it fits now. */
  tryTake(mb: number): boolean {
    if (this.used + mb > this.totalMb) return false;
    this.used += mb;
    return true;
  }

  /** Takes `mb` even past the total: memory an instance turned out to hold (a microVM's guest). */
  take(mb: number): void {
    this.used += mb;
  }

  give(mb: number): void {
    this.used = Math.max(0, this.used - mb);
  }

  /** How much more must be evicted for `mb` to fit, counting what is already being freed. */
  shortfall(mb: number): number {
    return Math.max(0, this.used - this.freeing + mb - this.totalMb);
  }

  /** Tracks an eviction: `mb` counts as freeing until `stopped` settles, then is given back. */
  async evicting(mb: number, stopped: Promise<unknown>): Promise<void> {
    this.freeing += mb;
    try {
      await stopped;
    } finally {
      this.freeing -= mb;
      this.give(mb);
    }
  }
}
