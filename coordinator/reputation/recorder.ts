// Applies task outcomes to reputation off the token path: each outcome rides the task journal's next batch, written
// in the same statement or transaction as the task records (a task's end and what it earned commit together). While
// the database is unavailable the batch waits and is tried again until it is back; writing it twice changes
// nothing (the full path skips the events a task already has), so an outcome counts exactly once. One outcome the
// database refuses (an unknown node) costs only itself: the batch is tried again with each outcome set apart. When
// it is the batch's task records that are refused, the outcomes ride the next batch, a few times at most.
import { sql, type Transaction } from "kysely";
import type { Logger } from "pino";
import { isDatabaseUnavailable } from "../db/faults.ts";
import { settlesWithin } from "../db/outage.ts";
import type { Database } from "../db/schema.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import type { TaskJournal } from "../tasks/journal.ts";
import { newTaskOutcomesStatement, writeNewTaskOutcomesIn } from "./new-outcomes.ts";
import {
  planTaskOutcome,
  writeTaskOutcomesIn,
  type PlannedEvent,
  type TaskOutcomeInput,
  type TaskOutcomeResult,
} from "./outcomes.ts";
import type { FastCompletionTracker } from "./rules.ts";

/** The most outcomes applied by one statement. */
const MAX_BATCH = 256;

/**
 * Batches an outcome rides at most when it is handed back (its batch's task records refused, not the outcome):
 * its own task's records may be what the database refuses, and then its event (which references the task) never
 * can be written.
 */
const MAX_RIDES = 3;

/** An outcome as it rides: planned once, however many times it is written. */
interface Planned {
  input: TaskOutcomeInput;
  plan: PlannedEvent[];
  /** Batches it has ridden that handed it back. */
  handedBack: number;
}

export class ReputationRecorder {
  /** Outcomes riding the journal's batches, not yet committed. */
  #riding = 0;

  constructor(
    private readonly journal: TaskJournal,
    private readonly tracker: FastCompletionTracker,
    private readonly registry: NodeRegistry,
    private readonly logger: Logger,
  ) {
    journal.carry<Planned>({
      write: (tx, items, careful) => (careful ? writeApart(tx, items) : writeInChunks(tx, items)),
      statement: (items, parameters) =>
        items.length > MAX_BATCH
          ? undefined
          : newTaskOutcomesStatement(
              items.map((item) => item.input),
              items.map((item) => item.plan),
              parameters,
            ),
      committed: (items, written) => {
        this.#riding -= items.length;
        // a try whose reply was lost: the scores are written, and read back for the live nodes that routing reads
        if (written === undefined) return void this.#reread(items.map((item) => item.input.nodeId));
        for (const [i, result] of (written as Written).entries()) {
          if ("refused" in result) this.#failed(items[i]!.input, result.refused);
          else this.#apply(items[i]!.input, result);
        }
      },
      refused: (items, err) => {
        for (const item of items) {
          if (++item.handedBack < MAX_RIDES) {
            journal.ride(item);
          } else {
            this.#riding--;
            this.#failed(item.input, err);
          }
        }
      },
    });
  }

  /** Outcomes not yet written: the gauge an operator watches during an outage. */
  get waiting(): number {
    return this.#riding;
  }

  /**
   * An outcome, written with the task journal's next batch (due at once); the live node's score (which routing
   * reads) follows once it is committed. Outcomes recorded together go in one batch, in the order they came.
   */
  record(input: TaskOutcomeInput): void {
    this.#riding++;
    this.journal.ride({ input, plan: planTaskOutcome(this.tracker, input), handedBack: 0 } satisfies Planned);
  }

  #apply(input: TaskOutcomeInput, result: { reputation: number }): void {
    this.#setLive(input.nodeId, result.reputation);
  }

  /** The score routing reads, on the node as this coordinator knows it (connected here or at a peer). */
  #setLive(nodeId: string, reputation: number): void {
    const node = this.registry.get(nodeId);
    if (node) node.reputation = reputation;
  }

  /** The scores of nodes whose outcomes committed with their reply lost, from the database to the live nodes. */
  async #reread(nodeIds: string[]): Promise<void> {
    try {
      const rows = await this.journal.db
        .selectFrom("nodes")
        .select(["id", "reputation"])
        .where("id", "in", [...new Set(nodeIds)])
        .execute();
      for (const { id, reputation } of rows) this.#setLive(id, reputation);
    } catch (err) {
      // the database went away again: the live scores follow with each node's next outcome
      this.logger.warn({ err, nodeIds }, "could not read back reputations written with a lost reply");
    }
  }

  #failed(input: TaskOutcomeInput, err: unknown): void {
    this.logger.error(
      { err, nodeId: input.nodeId, taskId: input.taskId, outcome: input.outcome },
      "could not apply a reputation rule",
    );
  }

  /** Resolves when every outcome recorded so far is applied (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#riding > 0) await this.journal.flush();
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

/** What the journal's transaction wrote of each outcome: its result, or why the database refused it. */
type Written = (TaskOutcomeResult | { refused: unknown })[];

/** Outcomes in the journal's transaction, each apart (a savepoint each): one the database refuses is skipped. */
async function writeApart(tx: Transaction<Database>, items: Planned[]): Promise<Written> {
  const written: Written = [];
  for (const { input, plan } of items) {
    await sql`SAVEPOINT outcome`.execute(tx);
    try {
      written.push((await writeTaskOutcomesIn(tx, [input], [plan]))[0]!);
      await sql`RELEASE SAVEPOINT outcome`.execute(tx);
    } catch (err) {
      if (isDatabaseUnavailable(err)) throw err;
      await sql`ROLLBACK TO SAVEPOINT outcome`.execute(tx);
      written.push({ refused: err });
    }
  }
  return written;
}

/**
 * Outcomes in the journal's transaction, at most MAX_BATCH to a call, tried as new (one statement; one already
 * written rolls the batch back, and its careful try writes each apart, which skips what is there).
 */
async function writeInChunks(tx: Transaction<Database>, items: Planned[]): Promise<Written> {
  const results: TaskOutcomeResult[] = [];
  for (let i = 0; i < items.length; i += MAX_BATCH) {
    const chunk = items.slice(i, i + MAX_BATCH);
    results.push(
      ...(await writeNewTaskOutcomesIn(
        tx,
        chunk.map((item) => item.input),
        chunk.map((item) => item.plan),
      )),
    );
  }
  return results;
}
