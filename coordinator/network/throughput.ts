// Tokens relayed per second over the last few seconds, for the stats: per-second buckets in a small ring.

export class ThroughputMeter {
  readonly #counts: number[];
  /** The second (Unix seconds) each bucket counts; a bucket from an older lap of the ring is stale. */
  readonly #seconds: number[];

  constructor(
    private readonly now: () => number = Date.now,
    private readonly windowSeconds = 10,
  ) {
    if (!Number.isInteger(windowSeconds) || windowSeconds < 1)
      throw new RangeError(`windowSeconds must be an integer >= 1, got ${windowSeconds}`);
    this.#counts = new Array<number>(windowSeconds).fill(0);
    this.#seconds = new Array<number>(windowSeconds).fill(-Infinity);
  }

  /** Counts relayed tokens: O(1), called on the token path. */
  record(tokens = 1): void {
    const second = Math.floor(this.now() / 1000);
    const slot = second % this.windowSeconds;
    if (this.#seconds[slot] !== second) {
      this.#seconds[slot] = second;
      this.#counts[slot] = 0;
    }
    this.#counts[slot]! += tokens;
  }

  /** Tokens per second over the window: the current, partial second and the full ones before it. */
  rate(): number {
    const ms = this.now();
    const second = Math.floor(ms / 1000);
    let tokens = 0;
    for (let slot = 0; slot < this.windowSeconds; slot++) {
      const age = second - this.#seconds[slot]!;
      if (age >= 0 && age < this.windowSeconds) tokens += this.#counts[slot]!;
    }
    // divide by the time the buckets really cover, so a burst this second is not diluted over a full window
    const covered = this.windowSeconds - 1 + (ms - second * 1000) / 1000;
    return tokens / Math.max(1, covered);
  }
}
