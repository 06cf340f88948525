// Applies task outcomes to reputation off the token path: after the task's record is written, in order, in batches.
// While the database is unavailable a batch waits and is tried again until it is back; writing it twice changes
// nothing (writeTaskOutcomes skips the events a task already has), so an outcome counts exactly once.
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { isDatabaseUnavailable } from "../db/faults.ts";
import { DEFAULT_PACING, OutageWait, settlesWithin, type OutagePacing } from "../db/outage.ts";
import type { Database } from "../db/schema.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import type { TaskJournal } from "../tasks/journal.ts";
import { planTaskOutcome, writeTaskOutcomes, type PlannedEvent, type TaskOutcomeInput } from "./ledger.ts";
import type { FastCompletionTracker } from "./rules.ts";

/** The most outcomes applied in one transaction. */
const MAX_BATCH = 256;

export class ReputationRecorder {
  #chain: Promise<void> = Promise.resolve();
  readonly #queue: TaskOutcomeInput[] = [];
  #draining = false;
  /** Outcomes taken from the queue and not yet written. */
  #writing = 0;
  readonly #outage: OutageWait;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly journal: TaskJournal,
    private readonly tracker: FastCompletionTracker,
    private readonly registry: NodeRegistry,
    private readonly logger: Logger,
    pacing: OutagePacing = DEFAULT_PACING,
  ) {
    this.#outage = new OutageWait(logger, "reputation outcomes", pacing);
  }

  /** Outcomes not yet written: the gauge an operator watches during an outage. */
  get waiting(): number {
    return this.#queue.length + this.#writing;
  }

  /**
   * Queues an outcome; the live node's score (which routing reads) follows once it is applied. Outcomes that
   * arrive while a batch is being written go together in the next one: one journal flush and one transaction
   * for all of them (writeTaskOutcomes), in the order they came.
   */
  record(input: TaskOutcomeInput): void {
    this.#queue.push(input);
    if (this.#draining) return;
    this.#draining = true;
    this.#chain = this.#chain.then(() => this.#drain());
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, MAX_BATCH);
        this.#writing = batch.length;
        await this.#write(
          batch,
          batch.map((input) => planTaskOutcome(this.tracker, input)),
        );
        this.#writing = 0;
      }
    } finally {
      this.#writing = 0;
      this.#draining = false;
    }
  }

  /** Writes a batch, waiting out an unavailable database; one bad outcome (an unknown node) costs only itself. */
  async #write(batch: TaskOutcomeInput[], plans: PlannedEvent[][]): Promise<void> {
    for (;;) {
      try {
        // reputation_events.task_id references the task row, which the journal writes behind
        await this.journal.flush();
        this.#apply(batch, await writeTaskOutcomes(this.db, batch, plans));
        this.#outage.recovered(this.waiting - batch.length);
        return;
      } catch (err) {
        if (isDatabaseUnavailable(err)) {
          await this.#outage.pause(err, this.waiting);
          continue;
        }
        if (batch.length === 1) return this.#failed(batch[0]!, err);
        for (const [i, input] of batch.entries()) await this.#write([input], [plans[i]!]);
        return;
      }
    }
  }

  #apply(batch: TaskOutcomeInput[], results: { reputation: number }[]): void {
    for (const [i, input] of batch.entries()) {
      const node = this.registry.get(input.nodeId);
      if (node) node.reputation = results[i]!.reputation;
    }
  }

  #failed(input: TaskOutcomeInput, err: unknown): void {
    this.logger.error(
      { err, nodeId: input.nodeId, taskId: input.taskId, outcome: input.outcome },
      "could not apply a reputation rule",
    );
  }

  /** Resolves when every queued outcome is applied (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#draining || this.#queue.length > 0) await this.#chain;
  }

  /** Shutdown: waits at most `timeoutMs` for the outcomes to be written; logs what could not be. */
  async close(timeoutMs: number): Promise<void> {
    if (await settlesWithin(this.settled(), timeoutMs)) return;
    this.logger.error(
      { waiting: this.waiting },
      "reputation outcomes not written before shutdown: the database is unavailable",
    );
  }
}
