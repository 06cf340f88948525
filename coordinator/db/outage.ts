// Paces a writer that waits out a database outage: growing pauses between tries, a log line when the wait starts,
// one now and then while it lasts, and one when the records are written again.
import type { Logger } from "pino";

export interface OutagePacing {
  /** The first pause after a failed try; each next one doubles, up to maxMs. */
  firstMs: number;
  maxMs: number;
  /** How often a wait that goes on is logged again. */
  logEveryMs: number;
}

export const DEFAULT_PACING: OutagePacing = { firstMs: 100, maxMs: 2_000, logEveryMs: 30_000 };

export class OutageWait {
  #since: number | undefined;
  #loggedAt = 0;
  #pauseMs: number;

  constructor(
    private readonly logger: Pick<Logger, "warn" | "info">,
    /** What waits, for the log lines ("task records", "reputation outcomes"). */
    private readonly what: string,
    private readonly pacing: OutagePacing = DEFAULT_PACING,
  ) {
    this.#pauseMs = pacing.firstMs;
  }

  /** Whether a write is waiting for the database now. */
  get waiting(): boolean {
    return this.#since !== undefined;
  }

  /** After a failed try: logs when due, then sleeps before the next one. `waiting` is how many records wait. */
  async pause(err: unknown, waiting: number): Promise<void> {
    const now = Date.now();
    if (this.#since === undefined) this.#since = now;
    if (now - this.#loggedAt >= this.pacing.logEveryMs) {
      this.#loggedAt = now;
      const reason = err instanceof Error ? err.message : String(err);
      this.logger.warn({ waiting, waitedMs: now - this.#since, err: reason }, `${this.what} waiting for the database`);
    }
    const pause = this.#pauseMs;
    this.#pauseMs = Math.min(this.pacing.maxMs, this.#pauseMs * 2);
    // unref: a wait alone must not keep a stopping process alive
    await new Promise((resolve) => setTimeout(resolve, pause).unref());
  }

  /** After a successful write: ends the wait, if there was one, with a log line. */
  recovered(waiting: number): void {
    if (this.#since === undefined) return;
    this.logger.info(
      { waitedMs: Date.now() - this.#since, waiting },
      `${this.what} written again: the database is back`,
    );
    this.#since = undefined;
    this.#loggedAt = 0;
    this.#pauseMs = this.pacing.firstMs;
  }
}

/**
 * Resolves true when `work` settles within `ms`, false when the time ran out first (shutdown with the database down).
 */
export async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
