// Task records written behind the token path: status changes queue in memory and are flushed in batches
// (one insert of new tasks with the changes they already had, one update per set of changed columns, one
// insert of status events), in order, so a stream never waits for the database and no record is lost while the
// coordinator runs.
import { sql, type Kysely, type Transaction } from "kysely";
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
          // a task created in this batch is inserted as it is now: its changes need no UPDATE of their own
          const updates = new Map(batch.updates);
          const inserts = batch.inserts.map((row) => {
            const update = updates.get(row.id!);
            updates.delete(row.id!);
            return update ? { ...row, ...update } : row;
          });
          if (inserts.length > 0) await tx.insertInto("tasks").values(inserts).execute();
          await writeUpdates(tx, updates);
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

/** SQL types of the task columns a status change may set (the record that jsonb_to_recordset reads). */
const COLUMN_TYPES: Record<string, string> = {
  status: "text",
  tier: "text",
  division_mode: "text",
  classifier: "text",
  node_id: "text",
  account_id: "uuid",
  user_id: "uuid",
  client_address: "text",
  prompt_tokens: "integer",
  completion_tokens: "integer",
  max_tokens: "integer",
  attempt: "integer",
  assigned_at: "timestamptz",
  first_token_at: "timestamptz",
  completed_at: "timestamptz",
  deadline_at: "timestamptz",
  ttft_ms: "integer",
  total_ms: "integer",
  failure_reason: "text",
};

/**
 * The updates, one statement per set of columns (a batch has a few: assigned, streaming, completed, failed):
 * `UPDATE tasks SET … FROM jsonb_to_recordset($1) AS d(id uuid, …) WHERE tasks.id = d.id`. Column names and
 * types come from COLUMN_TYPES only; an update with any other column is written on its own.
 */
async function writeUpdates(tx: Transaction<Database>, updates: Map<string, TaskUpdate>): Promise<void> {
  const groups = new Map<string, { columns: string[]; rows: Record<string, unknown>[] }>();
  for (const [id, update] of updates) {
    const columns = Object.keys(update).sort();
    if (columns.some((column) => !(column in COLUMN_TYPES))) {
      await tx.updateTable("tasks").set(update).where("id", "=", id).execute();
      continue;
    }
    const signature = columns.join(",");
    const group = groups.get(signature) ?? { columns, rows: [] };
    group.rows.push({ ...update, id });
    groups.set(signature, group);
  }
  for (const { columns, rows } of groups.values()) {
    const assignments = sql.join(columns.map((column) => sql`${sql.ref(column)} = d.${sql.ref(column)}`));
    const record = sql.join([sql`id uuid`, ...columns.map((column) => sql`${sql.ref(column)} ${sql.raw(COLUMN_TYPES[column]!)}`)]);
    await sql`UPDATE tasks SET ${assignments} FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS d(${record}) WHERE tasks.id = d.id`.execute(tx);
  }
}
