// Task outcomes into reputation: the events an outcome asks for (planTaskOutcome) and how they are written
// (writeTaskOutcomesIn, in the task journal's transaction or recordTaskOutcome's own; new ones that only
// raise one node's score take new-outcomes.ts's one statement), each event in the same transaction as the new score.
import { sql, type Kysely, type RawBuilder, type Transaction } from "kysely";
import { prepared } from "../db/prepared.ts";
import { insertRecordset, recordset, type ColumnTypes } from "../db/recordset.ts";
import type { Database, JsonValue, NewReputationEvent, ReputationRule } from "../db/schema.ts";
import type { Difficulty, NodeTier } from "../../common/vocabulary.ts";
import { applyDelta, type FastCompletionTracker, RULE_DELTAS } from "./rules.ts";
export type TaskOutcome = "completed" | "timeout" | "invalid_response";

export interface TaskOutcomeInput {
  nodeId: string;
  accountId: string;
  taskId: string;
  difficulty: Difficulty;
  tier: NodeTier;
  outcome: TaskOutcome;
  completionTokens: number;
  /** First token -> final result on this node (see rules.ts for the fast definition). */
  generationMs: number;
  /** Assignment -> final result on this node; needed to judge short answers (< 32 tokens). */
  responseMs?: number;
  /** More evidence for a penalty (a consensus or spot-check mismatch: both outputs' hashes), kept in the event. */
  evidence?: { [key: string]: JsonValue };
}

export interface TaskOutcomeResult {
  /** The node's score afterwards: put it on the LiveNode so routing sees it. */
  reputation: number;
  /** The sum of the deltas applied by this call. */
  delta: number;
  fast: boolean;
  /** false when this outcome of this task had already been recorded for this node. */
  applied: boolean;
}

/**
 * Records what a node did with a task: +10 (+5 more when fast), -20 on timeout, -50 on an invalid
 * response. At most once per (node, task, rule), so a repeated call changes nothing. The task's row
 * must already be in the tasks table (reputation_events.task_id references it).
 */
export async function recordTaskOutcome(
  db: Kysely<Database>,
  fastTracker: FastCompletionTracker,
  input: TaskOutcomeInput,
): Promise<TaskOutcomeResult> {
  const plan = planTaskOutcome(fastTracker, input);
  return (await db.transaction().execute((tx) => writeTaskOutcomesIn(tx, [input], [plan])))[0]!;
}

/** One event an outcome asks for; `requires`: applied only with that event of the same outcome (the fast bonus). */
export interface PlannedEvent {
  rule: ReputationRule;
  delta: number;
  evidence: JsonValue;
  requires?: ReputationRule;
}

/**
 * The events an outcome asks for. Judging speed records the completion's timing in the tracker, so an outcome is
 * planned once, however many times writing it is tried.
 */
export function planTaskOutcome(fastTracker: FastCompletionTracker, input: TaskOutcomeInput): PlannedEvent[] {
  if (input.outcome !== "completed") {
    const evidence = {
      difficulty: input.difficulty,
      tier: input.tier,
      completionTokens: input.completionTokens,
      ...input.evidence,
    };
    return [{ rule: input.outcome, delta: RULE_DELTAS[input.outcome], evidence }];
  }
  const verdict = fastTracker.judge(input);
  const evidence = {
    difficulty: input.difficulty,
    tier: input.tier,
    completionTokens: input.completionTokens,
    generationMs: input.generationMs,
    ...(input.responseMs !== undefined ? { responseMs: input.responseMs } : {}),
  };
  const planned: PlannedEvent[] = [{ rule: "task_completed", delta: RULE_DELTAS.task_completed, evidence }];
  if (verdict.fast) {
    const fastEvidence = {
      ...evidence,
      kind: verdict.kind ?? null,
      speed: verdict.speed ?? null,
      p75: verdict.threshold ?? null,
      samples: verdict.samples,
    };
    planned.push({
      rule: "fast_completion",
      delta: RULE_DELTAS.fast_completion,
      evidence: fastEvidence,
      requires: "task_completed",
    });
  }
  return planned;
}

/**
 * Writes planned outcomes (`plans[i]` for `inputs[i]`) in order, inside a transaction the caller holds (the task
 * journal's batch, so that a task's end and its outcome commit together): the nodes' rows locked once (in id order,
 * so concurrent batches cannot deadlock), the events already recorded read once, then one statement for the new
 * events and the nodes' new scores. Same rules and results as one recordTaskOutcome per input.
 */
export async function writeTaskOutcomesIn(
  tx: Transaction<Database>,
  inputs: readonly TaskOutcomeInput[],
  plans: readonly PlannedEvent[][],
): Promise<TaskOutcomeResult[]> {
  if (inputs.length === 0) return [];
  const key = (nodeId: string, rule: string, periodKey: string) => JSON.stringify([nodeId, rule, periodKey]);
  const periodOf = (input: TaskOutcomeInput) => `task:${input.taskId}`;
  const nodeIds = [...new Set(inputs.map((input) => input.nodeId))].sort();
  const locked = await tx
    .selectFrom("nodes")
    .select(["id", "reputation"])
    .where("id", "in", nodeIds)
    .orderBy("id")
    .forUpdate()
    .execute();
  const scores = new Map(locked.map((row) => [row.id, row.reputation]));
  for (const id of nodeIds) if (!scores.has(id)) throw new Error(`reputation event for unknown node ${id}`);
  // a statement of its own after the lock: its snapshot sees the events of whoever held the lock before
  // (arrays, not IN lists: one placeholder each however large the batch)
  const periods = [...new Set(inputs.map(periodOf))];
  const { rows: existing } = await prepared(sql<{ node_id: string; rule: string; period_key: string | null }>`
    SELECT node_id, rule, period_key FROM reputation_events
    WHERE node_id = ANY(${nodeIds}::text[]) AND period_key = ANY(${periods}::text[])`).execute(tx);
  const recorded = new Set(existing.map((row) => key(row.node_id, row.rule, row.period_key ?? "")));
  const events: (Omit<NewReputationEvent, "evidence"> & { evidence: JsonValue })[] = [];
  const changed = new Set<string>();
  const results = inputs.map((input, i): TaskOutcomeResult => {
    const result = { reputation: 0, delta: 0, fast: false, applied: false };
    for (const event of plans[i]!) {
      const eventKey = key(input.nodeId, event.rule, periodOf(input));
      if (recorded.has(eventKey)) continue;
      if (event.requires && !result.applied) continue; // the completion was recorded before: no new bonus either
      recorded.add(eventKey);
      const current = scores.get(input.nodeId)!;
      const { next, applied } = applyDelta(current, event.delta);
      scores.set(input.nodeId, next);
      if (next !== current) changed.add(input.nodeId);
      events.push({
        node_id: input.nodeId,
        account_id: input.accountId,
        rule: event.rule,
        delta: applied,
        task_id: input.taskId,
        period_key: periodOf(input),
        evidence: event.evidence,
        reputation_after: next,
      });
      result.applied = true;
      result.delta += applied;
      result.fast ||= event.rule === "fast_completion";
    }
    // the node's score after this outcome, as if the outcomes had been recorded one by one
    result.reputation = scores.get(input.nodeId)!;
    return result;
  });
  if (events.length > 0 || changed.size > 0) {
    // the events and the new scores in one statement; the parts of a WITH run whatever the final SELECT reads
    const parts: RawBuilder<unknown>[] = [];
    if (events.length > 0)
      parts.push(insertRecordset("reputation_events", EVENT_COLUMNS, { columns: EVENT_COLUMN_NAMES, rows: events }));
    if (changed.size > 0) {
      const rows = [...changed].map((id) => ({ id, reputation: scores.get(id)! }));
      parts.push(sql`UPDATE nodes SET reputation = s.reputation
          FROM ${recordset(SCORE_COLUMNS, ["id", "reputation"], rows, "s")} WHERE nodes.id = s.id`);
    }
    const named = parts.map((part, i) => sql`${sql.raw(`w${i}`)} AS (${part})`);
    await prepared(sql`WITH ${sql.join(named)} SELECT 1`).execute(tx);
  }
  return results;
}

const SCORE_COLUMNS: ColumnTypes = { id: "text", reputation: "double precision" };

/** The columns writeTaskOutcomesIn writes, as jsonb_to_recordset reads them. */
const EVENT_COLUMNS: ColumnTypes = {
  node_id: "text",
  account_id: "uuid",
  rule: "text",
  delta: "double precision",
  task_id: "uuid",
  period_key: "text",
  evidence: "jsonb",
  reputation_after: "double precision",
};
const EVENT_COLUMN_NAMES = Object.keys(EVENT_COLUMNS);
