// Task records written behind the token path: status changes queue in memory and are flushed in batches, each one
// statement (the new tasks with the changes they already had, one update per set of changed columns, the status
// events), in order, so a stream never waits for the database. While the database is unavailable the batches wait
// and are tried again until it is back; a batch is written exactly once (a retry first asks whether the last try,
// whose reply was lost, landed), and new tasks are refused while too many records wait.
import type { Kysely, Transaction } from "kysely";
import type { Logger } from "pino";
import { isDatabaseUnavailable } from "../db/faults.ts";
import { DEFAULT_PACING, OutageWait, settlesWithin, type OutagePacing } from "../db/outage.ts";
import type { Database, NewTask, TaskStatus, TaskUpdate } from "../db/schema.ts";
import { randomUUID } from "node:crypto";
import {
  committed,
  earliestEnd,
  emptyPending,
  markLanded,
  partOf,
  type Pending,
  type RiderStatement,
  taskIdsOf,
  writeBatch,
  writeBatchAlone,
} from "./journal-batch.ts";

/**
 * What commits with the task records (the reputation ledger's outcomes): items given to ride() are written with the
 * next batch, as parts of its statement (statement()) or in its transaction after its task records (write()), so
 * that a task's end and what it earned commit together or not at all. write() may run more than once for the same
 * items (an outage retries the batch) and must then change nothing twice. After a try that failed for another
 * reason than an outage, the batch is tried again with `careful`: write() then sets each item apart (a savepoint
 * each), so that one the database refuses costs only itself, and says so in what it returns.
 */
export interface JournalRider<T> {
  write(tx: Transaction<Database>, items: T[], careful: boolean): Promise<unknown>;
  /**
   * The items as parts of a batch written as one statement (writeBatchAlone), their parameters appended to
   * `parameters`; undefined when they cannot be, and the batch takes a transaction.
   */
  statement?(items: T[], parameters: unknown[]): RiderStatement | undefined;
  /**
   * The batch committed; `written` is what write() returned in the try that committed, or what the statement's
   * read() made of its row; undefined when that try's reply was lost.
   */
  committed(items: T[], written: unknown): void;
  /**
   * The batch failed for another reason than an outage, even item by item: the task records go on without these
   * items, which the rider may ride() again.
   */
  refused(items: T[], err: unknown): void;
}

const TERMINAL: ReadonlySet<TaskStatus> = new Set(["completed", "failed", "cancelled"]);

/** Tries of one task's records that fail for another reason than an unavailable database (a bug, not an outage). */
const MAX_OTHER_FAILURES = 3;

export interface TaskJournalOptions {
  /** How long changes gather before a batch is written. */
  flushDelayMs?: number;
  /**
   * How long, at most, an ended task's records (and what rides with them) gather before a batch is written: 0, after
   * this turn's I/O (TASK_JOURNAL_END_FLUSH_MS).
   */
  endFlushMs?: number;
  /** This coordinator's instance, stamped on the tasks it creates so that a peer can end them if it dies. */
  instance?: string;
  /** Records (status events) waiting to be written at which new tasks are refused (TASK_JOURNAL_MAX_WAITING). */
  maxWaiting?: number;
  /**
   * Told after each batch is written that ended tasks: the earliest end (`completed_at`) among them. The earnings
   * estimate reads again what it had counted past that instant (records written late, after an outage).
   */
  landed?: (earliestEnd: Date) => void;
  pacing?: OutagePacing;
}

export class TaskJournal {
  #pending = emptyPending();
  #timer: NodeJS.Timeout | undefined;
  /** A flush is due soon (a task ended), within endFlushMs: how to call it off. */
  #cancelSoon: (() => void) | undefined;
  #flushing: Promise<void> = Promise.resolve();
  /** Events queued or being written, not yet in the database. */
  #waiting = 0;
  readonly #outage: OutageWait;
  readonly #flushDelayMs: number;
  readonly #endFlushMs: number;
  readonly #instance: string | null;
  readonly #maxWaiting: number;
  readonly #landed: ((earliestEnd: Date) => void) | undefined;
  #rider: JournalRider<unknown> | undefined;
  /** The mark of the last batch written alone, deleted with the next one. */
  #lastMark: string | undefined;

  constructor(
    /** Where the records go; a rider reads back through it what a batch wrote (its reply lost). */
    readonly db: Kysely<Database>,
    private readonly logger: Logger,
    options: TaskJournalOptions = {},
  ) {
    this.#flushDelayMs = options.flushDelayMs ?? 20;
    this.#endFlushMs = options.endFlushMs ?? 0;
    this.#instance = options.instance ?? null;
    this.#maxWaiting = options.maxWaiting ?? 100_000;
    this.#landed = options.landed;
    this.#outage = new OutageWait(logger, "task records", options.pacing ?? DEFAULT_PACING);
  }

  /** Records (status events) not yet in the database: the gauge an operator watches during an outage. */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * false while as many records wait as the cap allows: the orchestrator then refuses new tasks (Unavailable), so
   * memory stays bounded, while the tasks already running still record every change (a few events each).
   */
  get admitting(): boolean {
    return this.#waiting < this.#maxWaiting;
  }

  /** Gives the journal its rider (one per journal). */
  carry<T>(rider: JournalRider<T>): void {
    if (this.#rider) throw new Error("the task journal carries one rider");
    this.#rider = rider as JournalRider<unknown>;
  }

  /** An item of the rider's, written with the next batch (which is due at once). */
  ride(item: unknown): void {
    this.#pending.riding.push(item);
    this.#flushSoon();
  }

  /** A new task, queued. */
  created(task: NewTask & { id: string }): void {
    this.#pending.inserts.push({ ...task, status: "queued", coordinator_instance: this.#instance });
    this.#event(task.id, "queued", null, null);
  }

  /** A status change with the columns it sets; `detail` goes to the task's event log. */
  update(taskId: string, status: TaskStatus, columns: TaskUpdate, nodeId: string | null, detail?: string): void {
    const merged = { ...this.#pending.updates.get(taskId), ...columns, status };
    this.#pending.updates.set(taskId, merged);
    this.#event(taskId, status, nodeId, detail ?? null);
  }

  /** An event without a status change of the row (e.g. a re-route), kept in the task's history. */
  note(taskId: string, status: TaskStatus, nodeId: string | null, detail: string): void {
    this.#event(taskId, status, nodeId, detail);
  }

  #event(taskId: string, status: TaskStatus, nodeId: string | null, detail: string | null): void {
    this.#pending.events.push({ task_id: taskId, status, node_id: nodeId, detail, at: new Date() });
    this.#waiting++;
    // an ended task is written soon (group-committed with whatever else is queued): the window in which a SIGKILLed
    // coordinator takes an answer's completion with it shrinks from the flush delay to endFlushMs and a round trip
    if (TERMINAL.has(status)) this.#flushSoon();
    this.#timer ??= setTimeout(() => void this.flush(), this.#flushDelayMs);
  }

  #flushSoon(): void {
    if (this.#cancelSoon) return;
    // with no delay: after this turn's I/O, not on a timer (at least 1 ms), before the next request is read. With
    // one (TASK_JOURNAL_END_FLUSH_MS, 10 ms by default) the ended tasks of several requests share a statement: one at
    // a time, each request's own statement cost the database ~1 ms of CPU and the coordinator ~0.3 ms, in the gap
    // before the next request, which waited for the cores (bench:peers: non-streamed added latency 2.3x Portkey's
    // with none, ~1.6x with 20 ms)
    if (this.#endFlushMs === 0) {
      const soon = setImmediate(() => void this.flush());
      this.#cancelSoon = () => clearImmediate(soon);
    } else {
      const soon = setTimeout(() => void this.flush(), this.#endFlushMs);
      this.#cancelSoon = () => clearTimeout(soon);
    }
  }

  /** Writes everything queued so far; resolves when it is in the database (after an outage, when that ends). */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#cancelSoon?.();
    this.#cancelSoon = undefined;
    // batches are written one after another, so a task's insert always precedes its later updates; a batch is
    // taken when its turn comes, so what queues while one is written goes out together in the next (group commit)
    this.#flushing = this.#flushing.then(() => {
      const batch = this.#pending;
      this.#pending = emptyPending();
      return this.#write(batch);
    });
    return this.#flushing;
  }

  /** Shutdown: flushes, waiting at most `timeoutMs` for an unavailable database; logs what could not be written. */
  async close(timeoutMs: number): Promise<void> {
    if (await settlesWithin(this.flush(), timeoutMs)) return;
    this.logger.error(
      { waiting: this.#waiting },
      "task records not written before shutdown: the database is unavailable",
    );
  }

  async #write(batch: Pending): Promise<void> {
    if (batch.events.length === 0 && batch.riding.length === 0) return;
    try {
      await this.#writeOrSplit(batch);
      this.#outage.recovered(this.#waiting - batch.events.length);
      const ended = this.#landed && earliestEnd(batch);
      if (ended) this.#landed!(ended);
    } finally {
      this.#waiting -= batch.events.length;
    }
  }

  /**
   * The batch and its rider's items as one statement, outside a transaction block (writeBatchAlone): the common
   * case, one round trip. false, with nothing of the batch written, when it must take a transaction instead: the
   * rider's items cannot join (outcomes of several nodes), or the database refused the statement (then the
   * transaction path finds out which record or item it was). After a lost reply, the batch's mark tells whether the
   * try committed before it is tried again.
   */
  async #writeAlone(batch: Pending): Promise<boolean> {
    const rider = this.#rider;
    let riding: RiderStatement | undefined;
    const statement =
      batch.riding.length === 0
        ? undefined
        : (parameters: unknown[]) => (riding = rider?.statement?.(batch.riding, parameters));
    const mark = randomUUID();
    let row: Record<string, unknown> | undefined;
    for (let unknown = false; ; ) {
      let probing = unknown;
      try {
        if (!unknown || !(await markLanded(this.db, mark))) {
          probing = false;
          row = await writeBatchAlone(this.db, batch, statement, {
            id: mark,
            previous: this.#lastMark,
            instance: this.#instance,
          });
          if (row === undefined) return false;
        }
        break;
      } catch (err) {
        // a probe that failed, for whatever reason, has not told whether the first try landed: it is asked again (a
        // transaction now could write the batch twice); a try known not to have landed goes the transaction's way
        if (!probing && !isDatabaseUnavailable(err)) return false;
        unknown = true; // the reply may have been lost after the server committed
        await this.#outage.pause(err, this.#waiting);
      }
    }
    this.#lastMark = mark;
    if (batch.riding.length > 0) rider!.committed(batch.riding, row && this.#read(riding!, row));
    return true;
  }

  /** What the rider makes of a committed statement's row; undefined (logged) should that fail: it is written. */
  #read(riding: RiderStatement, row: Record<string, unknown>): unknown {
    try {
      return riding.read(row);
    } catch (err) {
      this.logger.error({ err }, "could not read what a task journal batch wrote");
      return undefined;
    }
  }

  /**
   * Writes a batch exactly once, waiting out an unavailable database. One that fails for another reason (a record
   * the database refuses) is written in halves, task by task in the end, so a bad record costs only its own task's
   * records and not every other task's of the batch; a single task's are tried a few times, then logged and dropped.
   */
  async #writeOrSplit(batch: Pending): Promise<void> {
    if (batch.events.length > 0 && (await this.#writeAlone(batch))) return;
    const tasks = taskIdsOf(batch);
    // the id of the last try's transaction: its COMMIT may have landed though its reply was lost
    let xid: string | undefined;
    // what the rider wrote in the last try, and whether it wrote item by item
    let written: unknown;
    let careful = false;
    let failures = 0;
    for (;;) {
      try {
        if (xid === undefined || !(await committed(this.db, xid))) {
          if (failures > 0 && tasks.length > 1) break;
          await this.db.transaction().execute(async (tx) => {
            xid = batch.events.length > 0 ? await writeBatch(tx, batch) : undefined;
            written = batch.riding.length > 0 ? await this.#rider!.write(tx, batch.riding, careful) : undefined;
          });
        }
        if (batch.riding.length > 0) this.#rider!.committed(batch.riding, written);
        return;
      } catch (err) {
        if (isDatabaseUnavailable(err)) {
          await this.#outage.pause(err, this.#waiting);
          continue;
        }
        if (batch.riding.length > 0 && !careful) {
          careful = true; // one of the rider's items, maybe: each set apart
          xid = undefined;
          continue;
        }
        if (batch.riding.length > 0) {
          // the records, then: they go on alone, and the items back to the rider, which may let them ride again
          this.#rider!.refused(batch.riding, err);
          batch = { ...batch, riding: [] };
          xid = undefined;
          if (batch.events.length === 0) return;
          continue;
        }
        failures++;
        if (tasks.length > 1) continue;
        if (failures >= MAX_OTHER_FAILURES) {
          this.logger.error(
            { err, taskId: tasks[0], records: batch.events.length },
            "task records could not be written",
          );
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * failures));
      }
    }
    const half = new Set(tasks.slice(0, Math.ceil(tasks.length / 2)));
    // the first half first: tasks in the order they were first recorded, so a parent's row precedes its parts'
    await this.#writeOrSplit(partOf(batch, (id) => half.has(id)));
    await this.#writeOrSplit(partOf(batch, (id) => !half.has(id)));
  }
}
