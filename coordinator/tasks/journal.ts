// Task records written behind the token path: status changes queue in memory and are flushed in batches
// (one insert of new tasks, one update per changed task, one insert of status events), in order, so a
// stream never waits for the database and no record is lost while the coordinator runs.
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database, NewTask, TaskStatus, TaskUpdate } from "../db/schema.ts";

interface Pending {
  inserts: NewTask[];
  updates: Map<string, TaskUpdate>;
  events: { task_id: string; status: TaskStatus; node_id: string | null; detail: string | null; at: Date }[];
}

const emptyPending = (): Pending => ({ inserts: [], updates: new Map(), events: [] });

export class TaskJournal {
  #pending = emptyPending();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Kysely<Database>,
    private readonly logger: Logger,
    private readonly flushDelayMs = 20,
  ) {}

  /** A new task, queued. */
  created(task: NewTask & { id: string }): void {
    this.#pending.inserts.push({ ...task, status: "queued" });
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
    this.#timer ??= setTimeout(() => void this.flush(), this.flushDelayMs);
  }

  /** Writes everything queued so far; resolves when it is in the database. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#pending;
    this.#pending = emptyPending();
    // batches are written one after another, so a task's insert always precedes its later updates
    this.#flushing = this.#flushing.then(() => this.#write(batch));
    return this.#flushing;
  }

  async #write(batch: Pending): Promise<void> {
    if (batch.events.length === 0) return;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.db.transaction().execute(async (tx) => {
          if (batch.inserts.length > 0) await tx.insertInto("tasks").values(batch.inserts).execute();
          for (const [id, update] of batch.updates) await tx.updateTable("tasks").set(update).where("id", "=", id).execute();
          await tx.insertInto("task_events").values(batch.events).execute();
        });
        return;
      } catch (err) {
        if (attempt >= 3) {
          this.logger.error({ err, tasks: batch.updates.size + batch.inserts.length }, "task records could not be written");
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  }
}
