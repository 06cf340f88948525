// Node session ends written behind the streams: a disconnect queues its session's end (and the node's measurements)
// and the ends go out in batches, one transaction of three statements each, so thousands of nodes dropping at once
// cost a handful of transactions instead of a pool connection each. While the database is unavailable the batches
// wait and are tried again until it is back; shutdown flushes what is queued.
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { isDatabaseUnavailable } from "../db/faults.ts";
import { DEFAULT_PACING, OutageWait, settlesWithin, type OutagePacing } from "../db/outage.ts";
import type { Database } from "../db/schema.ts";
import type { MeasuredSnapshot } from "./measurements.ts";
import { writeSessionEnds, type SessionEnd } from "./store.ts";

/** Tries of one end that fails for another reason than an unavailable database or a lock conflict (a bug). */
const MAX_OTHER_FAILURES = 3;

/** deadlock_detected, serialization_failure: another writer held the rows; the batch is simply tried again. */
const LOCK_CONFLICTS = new Set(["40P01", "40001"]);

export interface SessionCloserOptions {
  /** How long ends gather before a batch is written. */
  flushDelayMs?: number;
  /** Session ends per transaction at most (a storm of ends is written as several). */
  maxBatch?: number;
  pacing?: OutagePacing;
}

export class SessionCloser {
  #pending: SessionEnd[] = [];
  /** The last queued measurements of each node not yet in the database (a quick reconnect starts from them). */
  readonly #unwritten = new Map<string, SessionEnd>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  /** Ends queued or being written, not yet in the database. */
  #waiting = 0;
  readonly #outage: OutageWait;
  readonly #flushDelayMs: number;
  readonly #maxBatch: number;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly logger: Logger,
    options: SessionCloserOptions = {},
  ) {
    this.#flushDelayMs = options.flushDelayMs ?? 20;
    this.#maxBatch = options.maxBatch ?? 1_000;
    this.#outage = new OutageWait(logger, "node session ends", options.pacing ?? DEFAULT_PACING);
  }

  /** Session ends not yet in the database. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Queues a session's end; its node goes offline when it is written, unless a newer session of it is open. */
  end(end: SessionEnd): void {
    this.#pending.push(end);
    this.#waiting++;
    if (end.measured) this.#unwritten.set(end.nodeId, end);
    this.#timer ??= setTimeout(() => void this.flush(), this.#flushDelayMs);
  }

  /** The measurements queued for a node and not yet written: newer than what its row holds. */
  unwrittenMeasurements(nodeId: string): MeasuredSnapshot | undefined {
    return this.#unwritten.get(nodeId)?.measured?.snapshot;
  }

  /** Writes everything queued so far; resolves when it is in the database (after an outage, when that ends). */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    // one batch at a time; what queues while one is written goes out together in the next (group commit)
    this.#flushing = this.#flushing.then(async () => {
      const queued = this.#pending;
      this.#pending = [];
      for (let i = 0; i < queued.length; i += this.#maxBatch) await this.#write(queued.slice(i, i + this.#maxBatch));
    });
    return this.#flushing;
  }

  /** Shutdown: flushes, waiting at most `timeoutMs` for an unavailable database; logs what could not be written. */
  async close(timeoutMs: number): Promise<void> {
    if (await settlesWithin(this.flush(), timeoutMs)) return;
    this.logger.error(
      { waiting: this.#waiting },
      "node session ends not written before shutdown: the database is unavailable",
    );
  }

  async #write(batch: SessionEnd[]): Promise<void> {
    try {
      await this.#writeOrSplit(batch);
      this.#outage.recovered(this.#waiting - batch.length);
    } finally {
      this.#waiting -= batch.length;
      for (const end of batch) if (this.#unwritten.get(end.nodeId) === end) this.#unwritten.delete(end.nodeId);
    }
  }

  /**
   * Writes a batch, waiting out an unavailable database and retrying lock conflicts. One that fails for another
   * reason (an end the database refuses) is written in halves, so a bad end costs only itself, not the batch; a
   * single end is tried a few times, then logged and dropped.
   */
  async #writeOrSplit(batch: SessionEnd[]): Promise<void> {
    let failures = 0;
    for (;;) {
      try {
        // no check of a lost COMMIT as the task journal makes: writing the same ends again changes nothing
        await this.db.transaction().execute((tx) => writeSessionEnds(tx, batch));
        return;
      } catch (err) {
        if (isDatabaseUnavailable(err)) {
          await this.#outage.pause(err, this.#waiting);
          continue;
        }
        const lockConflict = LOCK_CONFLICTS.has((err as { code?: string }).code ?? "");
        if (!lockConflict && batch.length > 1) break;
        if (!lockConflict && ++failures >= MAX_OTHER_FAILURES) {
          const [end] = batch;
          this.logger.error(
            { err, sessionId: end?.sessionId, nodeId: end?.nodeId },
            "a node session end could not be written",
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * Math.max(1, failures)).unref());
      }
    }
    const half = Math.ceil(batch.length / 2);
    await this.#writeOrSplit(batch.slice(0, half));
    await this.#writeOrSplit(batch.slice(half));
  }
}
