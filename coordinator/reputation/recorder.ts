// Applies task outcomes to reputation off the token path: after the task's record is written, in order.
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database } from "../db/schema.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import type { TaskJournal } from "../tasks/journal.ts";
import { recordTaskOutcome, type TaskOutcomeInput } from "./ledger.ts";
import type { FastCompletionTracker } from "./rules.ts";

export class ReputationRecorder {
  #chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly journal: TaskJournal,
    private readonly tracker: FastCompletionTracker,
    private readonly registry: NodeRegistry,
    private readonly logger: Logger,
  ) {}

  /** Queues an outcome; the live node's score (which routing reads) follows once it is applied. */
  record(input: TaskOutcomeInput): void {
    this.#chain = this.#chain.then(async () => {
      try {
        // reputation_events.task_id references the task row, which the journal writes behind
        await this.journal.flush();
        const result = await recordTaskOutcome(this.db, this.tracker, input);
        const node = this.registry.get(input.nodeId);
        if (node) node.reputation = result.reputation;
      } catch (err) {
        this.logger.error({ err, nodeId: input.nodeId, taskId: input.taskId, outcome: input.outcome }, "could not apply a reputation rule");
      }
    });
  }

  /** Resolves when every queued outcome is applied (tests, shutdown). */
  settled(): Promise<void> {
    return this.#chain;
  }
}
