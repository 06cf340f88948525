// One batch of the task journal (journal.ts) in SQL: the records of the tasks it holds, written as one statement
// (alone, with a mark, or in a transaction); its parts by task, for writing a batch the database refuses in halves;
// and whether a try whose reply was lost landed (its mark, or its transaction's id).
import { sql, type Kysely, type Transaction } from "kysely";
import { isDatabaseUnavailable, CommitUnknownError } from "../db/faults.ts";
import { preparedText } from "../db/prepared.ts";
import {
  type ColumnTypes,
  epochMsRows,
  epochMsValue,
  groupByColumns,
  insertRecordsetText,
  quoted,
  recordsetText,
  storableJson,
} from "../db/recordset.ts";
import type { Database, NewTask, TaskStatus, TaskUpdate } from "../db/schema.ts";

export interface Pending {
  inserts: NewTask[];
  updates: Map<string, TaskUpdate>;
  events: { task_id: string; status: TaskStatus; node_id: string | null; detail: string | null; at: Date }[];
  /** The rider's items that commit with these records. */
  riding: unknown[];
}

export const emptyPending = (): Pending => ({ inserts: [], updates: new Map(), events: [], riding: [] });

/** The tasks a batch writes, in the order they were first recorded (every insert and update has its events). */
export function taskIdsOf(batch: Pending): string[] {
  return [...new Set(batch.events.map((event) => event.task_id))];
}

/** The earliest `completed_at` the batch writes (its ended tasks' ends); undefined when it ends none. */
export function earliestEnd(batch: Pending): Date | undefined {
  let earliest: Date | undefined;
  const consider = (end: Date | null | undefined) => {
    if (end instanceof Date && !(earliest && earliest <= end)) earliest = end;
  };
  for (const row of batch.inserts) consider(row.completed_at);
  for (const update of batch.updates.values()) consider(update.completed_at);
  return earliest;
}

/** The records of the tasks `take` picks: a task's insert, update and events stay together. */
export function partOf(batch: Pending, take: (taskId: string) => boolean): Pending {
  return {
    inserts: batch.inserts.filter((row) => take(row.id!)),
    updates: new Map([...batch.updates].filter(([id]) => take(id))),
    events: batch.events.filter((event) => take(event.task_id)),
    riding: [],
  };
}

/**
 * One batch in one statement: the new tasks (with the changes they already had), the updates (one part per set of
 * changed columns) and the status events, each part's rows as one JSON parameter (db/recordset.ts). The parts of a
 * WITH see one snapshot, so no part may depend on another's rows: a task inserted here carries its updates already,
 * and its events' foreign keys are checked at the end of the statement. Returns the transaction's id.
 */
export async function writeBatch(tx: Transaction<Database>, batch: Pending): Promise<string> {
  const parameters: unknown[] = [];
  // the transaction's id comes back with the statement (no round trip of its own): had its reply been lost, the
  // COMMIT would never have been sent, so a try whose id is unknown cannot have committed
  const text = `WITH ${batchParts(batch, parameters)} SELECT pg_current_xact_id()::text AS xid`;
  const { rows } = await tx.executeQuery(preparedText<{ xid: string }>(text, parameters));
  return rows[0]!.xid;
}

/** What a rider adds to a batch written alone: more WITH parts, more columns of its one row, and how to read them. */
export interface RiderStatement {
  parts: string;
  columns: string;
  read(row: Record<string, unknown>): unknown;
}

/**
 * A batch as one statement outside a transaction block, with what rides it: one round trip where a transaction
 * takes four (begin, the statement, the rider's, commit). Its reply can be lost after the server committed it, and
 * the transaction's id would not tell (it comes with that reply), so the statement also writes `mark` into
 * journal_batches, and before a retry markLanded writes the same mark again: its primary key says whether the first
 * try committed. It deletes the journal's previous mark, whose batch can no longer be retried. Returns the
 * statement's row, for the rider; undefined, with nothing sent, when the rider's items cannot join the statement.
 */
export async function writeBatchAlone(
  db: Kysely<Database>,
  batch: Pending,
  rider: ((parameters: unknown[]) => RiderStatement | undefined) | undefined,
  mark: { id: string; previous: string | undefined; instance: string | null },
): Promise<Record<string, unknown> | undefined> {
  const parameters: unknown[] = [mark.id, mark.previous ?? null, mark.instance];
  const parts = batchParts(batch, parameters);
  const riding = rider?.(parameters);
  if (rider && !riding) return undefined;
  const text = riding
    ? `WITH ${MARKS}, ${parts}, ${riding.parts} SELECT ${riding.columns}`
    : `WITH ${MARKS}, ${parts} SELECT 1 AS written`;
  const { rows } = await db.executeQuery(preparedText<Record<string, unknown>>(text, parameters));
  return rows[0]!;
}

/** writeBatchAlone's first parts: its mark written ($1, with its instance at $3), the previous one ($2) deleted. */
const MARKS =
  "mark AS (INSERT INTO journal_batches (id, instance) VALUES ($1::uuid, $3::text)), " +
  "unmark AS (DELETE FROM journal_batches WHERE id = $2::uuid)";

/**
 * Whether a batch written alone with `mark` committed, its first try's reply lost. Writing the mark again waits for
 * a try still in progress (its backend has not yet noticed the lost connection) and conflicts with one that
 * committed; the probe's own mark is rolled back.
 */
export async function markLanded(db: Kysely<Database>, mark: string): Promise<boolean> {
  return db
    .transaction()
    .execute(async (tx) => {
      const { rows } = await sql`INSERT INTO journal_batches (id) VALUES (${mark}::uuid)
      ON CONFLICT DO NOTHING RETURNING 1 AS written`.execute(tx);
      if (rows.length > 0) throw new MarkNotLanded();
      return true;
    })
    .catch((err: unknown) => {
      if (err instanceof MarkNotLanded) return false;
      throw err;
    });
}

class MarkNotLanded extends Error {}

/** The batch's WITH parts (`w0 AS (…), …`), their rows appended to `parameters`. */
function batchParts(batch: Pending, parameters: unknown[]): string {
  // a task created in this batch is inserted as it is now: its changes need no UPDATE of their own
  const updates = new Map(batch.updates);
  const inserts = batch.inserts.map((row) => {
    const update = updates.get(row.id!);
    updates.delete(row.id!);
    return update ? { ...row, ...update } : row;
  });
  // the text is written here rather than through Kysely's nodes: on every chat's path, their building and compiling
  // cost more than the statement; every column of tasks has its type in TASK_COLUMNS (journal.test.ts checks it)
  // timestamps travel as milliseconds since the epoch (db/recordset.ts epochMsRows): the JSON is a third of the work
  const parts: string[] = [];
  const rowsAt = (types: ColumnTypes, rows: readonly object[]) =>
    parameters.push(storableJson(epochMsRows(types, rows)));
  for (const group of groupByColumns(inserts)) {
    parts.push(insertRecordsetText("tasks", TASK_COLUMNS, group.columns, rowsAt(TASK_COLUMNS, group.rows), true));
  }
  for (const group of groupByColumns([...updates].map(([id, update]) => ({ ...update, id })))) {
    const rows = rowsAt(TASK_COLUMNS, group.rows);
    parts.push(updateText(group.columns, rows, parameters.push(group.rows.map((row) => row.id as string))));
  }
  // a batch always has events: #write skips one without any
  const events = rowsAt(EVENT_COLUMNS, batch.events);
  parts.push(insertRecordsetText("task_events", EVENT_COLUMNS, EVENT_COLUMN_NAMES, events, true));
  return parts.map((part, i) => `w${i} AS (${part})`).join(", ");
}

/**
 * Whether the transaction committed (PostgreSQL keeps every transaction's fate; this is what pg_xact_status is
 * for). Still in progress means its backend has not yet noticed the lost connection: ask again later.
 */
export async function committed(db: Kysely<Database>, xid: string): Promise<boolean> {
  let status: string | null | undefined;
  try {
    const { rows } = await sql<{ status: string | null }>`SELECT pg_xact_status(${xid}::xid8) AS status`.execute(db);
    status = rows[0]?.status;
  } catch (err) {
    if (isDatabaseUnavailable(err)) throw err;
    // "in the future": a failover to a replica that never saw the transaction, so it did not commit there
    if ((err as { code?: unknown }).code === INVALID_PARAMETER_VALUE) return false;
    // any other failure (a lock or statement timeout) has not told: the writer asks again, as after an outage
    throw new CommitUnknownError(xid, err);
  }
  if (status === "in progress") throw new CommitUnknownError(xid);
  return status === "committed";
}

/** pg_xact_status's SQLSTATE for a transaction id from the future. */
const INVALID_PARAMETER_VALUE = "22023";

/** SQL types of the task columns the journal writes (the record that jsonb_to_recordset reads): all of them. */
export const TASK_COLUMNS: ColumnTypes = {
  id: "uuid",
  parent_id: "uuid",
  status: "text",
  difficulty: "text",
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
  created_at: "timestamptz",
  assigned_at: "timestamptz",
  first_token_at: "timestamptz",
  completed_at: "timestamptz",
  deadline_at: "timestamptz",
  ttft_ms: "integer",
  total_ms: "integer",
  failure_reason: "text",
  coordinator_instance: "text",
};

const EVENT_COLUMNS: ColumnTypes = {
  task_id: "uuid",
  status: "text",
  node_id: "text",
  detail: "text",
  at: "timestamptz",
};
const EVENT_COLUMN_NAMES = Object.keys(EVENT_COLUMNS);

/**
 * `UPDATE tasks SET … FROM jsonb_to_recordset($rows) AS d(id uuid, …) WHERE tasks.id = d.id AND tasks.id = ANY($ids)`
 * for the updates that set one set of columns (a batch has a few: assigned, streaming, completed, failed).
 */
function updateText(columns: readonly string[], rows: number, ids: number): string {
  const assignments = columns
    .filter((column) => column !== "id")
    .map((column) => `${quoted(column)} = ${epochMsValue(TASK_COLUMNS, column, "d")}`)
    .join(", ");
  // the id list lets the planner look the rows up by primary key; joining on d.id alone scans the whole table
  return `UPDATE tasks SET ${assignments} FROM ${recordsetText(TASK_COLUMNS, columns, rows, "d", true)}
    WHERE tasks.id = d.id AND tasks.id = ANY($${ids}::uuid[])`;
}
