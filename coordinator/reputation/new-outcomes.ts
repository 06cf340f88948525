// New task outcomes that only raise one node's score (a completion and its bonus: the common case) in one statement
// instead of writeTaskOutcomesIn's three: on their own in the task journal's transaction (writeNewTaskOutcomesIn),
// or as parts of the journal's batch written alone (newTaskOutcomesStatement). Anything else takes the full path.
import type { Transaction } from "kysely";
import { preparedText } from "../db/prepared.ts";
import { recordsetText, storableJson, type ColumnTypes } from "../db/recordset.ts";
import type { Database } from "../db/schema.ts";
import type { RiderStatement } from "../tasks/journal-batch.ts";
import { type PlannedEvent, type TaskOutcomeInput, type TaskOutcomeResult, writeTaskOutcomesIn } from "./outcomes.ts";

/** The first try found an outcome's event already written, or a node that does not exist: nothing was kept. */
export class OutcomesNotNewError extends Error {}

/**
 * The first try of new outcomes that only raise scores (completions and their bonus: no floor to clamp at), in one
 * statement instead of writeTaskOutcomesIn's three: each node's score goes up by its events' sum (the UPDATE takes
 * the row's newest version, so no lock is read first) and each event's reputation_after counts back from the new
 * score. An event already written (a retry) or an unknown node fails the statement: it throws OutcomesNotNewError,
 * which rolls the caller's transaction back, and the caller's next try takes the full path. Outcomes with a
 * negative delta, and batches naming several nodes, take the full path at once.
 */
export async function writeNewTaskOutcomesIn(
  tx: Transaction<Database>,
  inputs: readonly TaskOutcomeInput[],
  plans: readonly PlannedEvent[][],
): Promise<TaskOutcomeResult[]> {
  const rows = newOutcomeRows(inputs, plans);
  if (!rows) return writeTaskOutcomesIn(tx, inputs, plans);
  try {
    const { rows: answer } = await tx.executeQuery(preparedText<NewOutcomesRow>(newOutcomesText(), [rows]));
    return newOutcomeResults(inputs, plans, answer[0]!);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === UNIQUE_VIOLATION || code === FOREIGN_KEY_VIOLATION) {
      throw new OutcomesNotNewError("outcome events already written, or for an unknown node", { cause: err });
    }
    throw err;
  }
}

/**
 * writeNewTaskOutcomesIn's outcomes as parts of another statement (the task journal's batch written alone), their
 * rows appended to `parameters`; undefined when they must take the full path. A statement that fails leaves the
 * caller to try again in a transaction.
 */
export function newTaskOutcomesStatement(
  inputs: readonly TaskOutcomeInput[],
  plans: readonly PlannedEvent[][],
  parameters: unknown[],
): RiderStatement | undefined {
  const rows = newOutcomeRows(inputs, plans);
  if (!rows) return undefined;
  return {
    ...newOutcomesParts(parameters.push(rows)),
    read: (row) => newOutcomeResults(inputs, plans, row as unknown as NewOutcomesRow),
  };
}

const UNIQUE_VIOLATION = "23505";
const FOREIGN_KEY_VIOLATION = "23503";

/** What the new-outcome parts' columns read: the events written and each node's new score in cents. */
interface NewOutcomesRow {
  inserted: string;
  nodes: { id: string; cents: number }[] | null;
}

/** The rows of new outcomes as JSON text (`seq`: their order); undefined when they must take the full path. */
function newOutcomeRows(inputs: readonly TaskOutcomeInput[], plans: readonly PlannedEvent[][]): string | undefined {
  // one node only: the full path locks several in id order, so that two batches never wait for each other
  const oneNode = inputs.every((input) => input.nodeId === inputs[0]?.nodeId);
  if (!oneNode || plans.some((plan) => plan.some((event) => event.delta < 0))) return undefined;
  const rows = inputs
    .flatMap((input, i) =>
      plans[i]!.map((event) => ({
        node_id: input.nodeId,
        account_id: input.accountId,
        rule: event.rule,
        cents: Math.round(event.delta * 100),
        task_id: input.taskId,
        period_key: `task:${input.taskId}`,
        evidence: event.evidence,
      })),
    )
    .map((row, seq) => ({ ...row, seq }));
  return rows.length === 0 ? undefined : storableJson(rows);
}

/** Each input's score: the node's new score less what its later inputs added. */
function newOutcomeResults(
  inputs: readonly TaskOutcomeInput[],
  plans: readonly PlannedEvent[][],
  answer: NewOutcomesRow,
): TaskOutcomeResult[] {
  const events = plans.reduce((sum, plan) => sum + plan.length, 0);
  if (Number(answer.inserted) !== events) {
    throw new OutcomesNotNewError(`${events - Number(answer.inserted)} outcome events were not new`);
  }
  const cents = new Map((answer.nodes ?? []).map((node) => [node.id, Number(node.cents)]));
  const results: TaskOutcomeResult[] = [];
  for (let i = inputs.length - 1; i >= 0; i--) {
    const { nodeId } = inputs[i]!;
    const added = plans[i]!.reduce((sum, event) => sum + Math.round(event.delta * 100), 0);
    results[i] = {
      reputation: cents.get(nodeId)! / 100,
      delta: added / 100,
      fast: plans[i]!.some((event) => event.rule === "fast_completion"),
      applied: true,
    };
    cents.set(nodeId, cents.get(nodeId)! - added);
  }
  return results;
}

/**
 * The WITH parts that write new outcomes whose rows are at `$<placeholder>` (`d`, `totals`, `upd`, `ins`) and the
 * columns that read what they did. An event already written breaks the unique key, and one for an unknown node its
 * foreign key (the LEFT JOIN keeps its row): either fails the statement, so nothing is written twice or half.
 */
function newOutcomesParts(placeholder: number): { parts: string; columns: string } {
  let text = partsByPlaceholder.get(placeholder);
  if (text === undefined) partsByPlaceholder.set(placeholder, (text = newOutcomesPartsText(placeholder)));
  return text;
}

/** The parts' text by the placeholder of their rows (a batch's shape sets it: a few values), built once each. */
const partsByPlaceholder = new Map<number, { parts: string; columns: string }>();

function newOutcomesPartsText(placeholder: number): { parts: string; columns: string } {
  return {
    parts: `d AS (SELECT * FROM ${recordsetText(NEW_EVENT_COLUMNS, NEW_EVENT_COLUMN_NAMES, placeholder)}),
    totals AS (SELECT node_id, sum(cents) AS cents FROM d GROUP BY node_id),
    upd AS (
      UPDATE nodes n SET reputation = (round(n.reputation * 100) + t.cents) / 100.0
      FROM totals t WHERE n.id = t.node_id
      RETURNING n.id, round(n.reputation * 100) AS cents
    ),
    ins AS (
      INSERT INTO reputation_events (node_id, account_id, rule, delta, task_id, period_key, evidence, reputation_after)
      SELECT d.node_id, d.account_id, d.rule, d.cents / 100.0, d.task_id, d.period_key, d.evidence,
        (u.cents - coalesce(sum(d.cents) OVER (PARTITION BY d.node_id ORDER BY d.seq DESC
          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) / 100.0
      FROM d LEFT JOIN upd u ON u.id = d.node_id
      RETURNING 1
    )`,
    columns: `(SELECT count(*) FROM ins)::text AS inserted,
      (SELECT json_agg(json_build_object('id', id, 'cents', cents)) FROM upd) AS nodes`,
  };
}

let newOutcomes: string | undefined;

/** writeNewTaskOutcomesIn's statement, its rows at $1 (written as text: it runs with every completion). */
function newOutcomesText(): string {
  if (newOutcomes === undefined) {
    const { parts, columns } = newOutcomesParts(1);
    newOutcomes = `WITH ${parts} SELECT ${columns}`;
  }
  return newOutcomes;
}

/** The rows writeNewTaskOutcomesIn reads (`seq`: their order, so each event's score after it counts back). */
const NEW_EVENT_COLUMNS: ColumnTypes = {
  seq: "integer",
  node_id: "text",
  account_id: "uuid",
  rule: "text",
  cents: "bigint",
  task_id: "uuid",
  period_key: "text",
  evidence: "jsonb",
};
const NEW_EVENT_COLUMN_NAMES = Object.keys(NEW_EVENT_COLUMNS);
