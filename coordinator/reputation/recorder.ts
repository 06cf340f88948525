// Applies task outcomes to reputation off the token path: after the task's record is written, in order, in batches.
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database } from "../db/schema.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import type { TaskJournal } from "../tasks/journal.ts";
import { planTaskOutcome, writeTaskOutcomes, type TaskOutcomeInput } from "./ledger.ts";
import type { FastCompletionTracker } from "./rules.ts";

/** The most outcomes applied in one transaction. */
const MAX_BATCH = 256;

export class ReputationRecorder {
  #chain: Promise<void> = Promise.resolve();
  readonly #queue: TaskOutcomeInput[] = [];
  #draining = false;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly journal: TaskJournal,
    private readonly tracker: FastCompletionTracker,
    private readonly registry: NodeRegistry,
    private readonly logger: Logger,
  ) {}

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
        const plans = batch.map((input) => planTaskOutcome(this.tracker, input));
        try {
          // reputation_events.task_id references the task row, which the journal writes behind
          await this.journal.flush();
          this.#apply(batch, await writeTaskOutcomes(this.db, batch, plans));
        } catch (err) {
          // one bad outcome (an unknown node) must not cost the others theirs: write them one by one
          if (batch.length === 1) this.#failed(batch[0]!, err);
          else {
            for (const [i, input] of batch.entries()) {
              await writeTaskOutcomes(this.db, [input], [plans[i]!]).then((r) => this.#apply([input], r), (e: unknown) => this.#failed(input, e));
            }
          }
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  #apply(batch: TaskOutcomeInput[], results: { reputation: number }[]): void {
    for (const [i, input] of batch.entries()) {
      const node = this.registry.get(input.nodeId);
      if (node) node.reputation = results[i]!.reputation;
    }
  }

  #failed(input: TaskOutcomeInput, err: unknown): void {
    this.logger.error({ err, nodeId: input.nodeId, taskId: input.taskId, outcome: input.outcome }, "could not apply a reputation rule");
  }

  /** Resolves when every queued outcome is applied (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#draining || this.#queue.length > 0) await this.#chain;
  }
}
