// The reputation ledger: every change is an event row written in the same transaction as the node's new score.
import type { Kysely, Transaction } from "kysely";
import { type Database, type JsonValue, json, type ReputationEventRow, type ReputationRule } from "../db/schema.ts";
import { DIFFICULTIES, type Difficulty, NODE_TIERS, type NodeTier } from "../../common/vocabulary.ts";
import { applyDelta, FastCompletionTracker, SHORT_ANSWER_TOKENS, type CompletionTiming } from "./rules.ts";

export interface ReputationEventInput {
  nodeId: string;
  /** The node's account when the event happens (payouts follow it, not later relinks). */
  accountId: string;
  rule: ReputationRule;
  /** The change asked for, or a function of the score at the moment it applies (weekly decay). */
  delta: number | ((current: number) => number);
  taskId?: string;
  /** With a key, the event applies at most once per (node, rule, key): a period, or a task. */
  periodKey?: string;
  evidence?: JsonValue;
}

export interface AppliedReputationEvent {
  /** false when an event with the same (node, rule, period key) already existed: nothing changed. */
  applied: boolean;
  /** The node's score after this call. */
  reputation: number;
  /** The delta recorded (after the floor); 0 when not applied. */
  delta: number;
}

/** Applies one event: the event row and the node's new score commit together or not at all. */
export async function applyReputationEvent(
  db: Kysely<Database>,
  input: ReputationEventInput,
): Promise<AppliedReputationEvent> {
  return db.transaction().execute((tx) => applyWithin(tx, input));
}

async function applyWithin(tx: Transaction<Database>, input: ReputationEventInput): Promise<AppliedReputationEvent> {
  // The row lock serialises every change to this node's score: concurrent events queue here, each
  // reads the score the previous one committed, so no update is lost and the floor sees the true score.
  const node = await tx
    .selectFrom("nodes")
    .select("reputation")
    .where("id", "=", input.nodeId)
    .forUpdate()
    .executeTakeFirst();
  if (!node) throw new Error(`reputation event for unknown node ${input.nodeId}`);
  const requested = typeof input.delta === "function" ? input.delta(node.reputation) : input.delta;
  if (!Number.isFinite(requested)) throw new Error(`reputation delta must be a finite number, got ${requested}`);
  const { next, applied } = applyDelta(node.reputation, requested);
  const inserted = await tx
    .insertInto("reputation_events")
    .values({
      node_id: input.nodeId,
      account_id: input.accountId,
      rule: input.rule,
      delta: applied,
      task_id: input.taskId ?? null,
      period_key: input.periodKey ?? null,
      evidence: input.evidence === undefined ? null : json(input.evidence),
      reputation_after: next,
    })
    .onConflict((oc) => oc.columns(["node_id", "rule", "period_key"]).doNothing())
    .returning("id")
    .executeTakeFirst();
  if (!inserted) return { applied: false, reputation: node.reputation, delta: 0 };
  if (next !== node.reputation) {
    await tx.updateTable("nodes").set({ reputation: next }).where("id", "=", input.nodeId).execute();
  }
  return { applied: true, reputation: next, delta: applied };
}

/** Events newest first, each with the node's score right after it (reputation_after). */
export async function reputationHistory(
  db: Kysely<Database>,
  who: { nodeId: string } | { accountId: string },
  limit = 50,
): Promise<ReputationEventRow[]> {
  const rows = Math.min(1000, Math.max(1, Math.floor(limit)));
  let query = db.selectFrom("reputation_events").selectAll();
  query = "nodeId" in who ? query.where("node_id", "=", who.nodeId) : query.where("account_id", "=", who.accountId);
  // Ids follow commit order per node (each event is inserted under the node's row lock).
  return query.orderBy("id", "desc").limit(rows).execute();
}

/**
 * A tracker seeded with the most recent completions of each (difficulty, tier, kind) from the tasks
 * table, so a restarted coordinator judges speed against the same history instead of an empty window.
 */
export async function loadFastTracker(
  db: Kysely<Database>,
  tracker = new FastCompletionTracker(),
): Promise<FastCompletionTracker> {
  for (const difficulty of DIFFICULTIES) {
    for (const tier of NODE_TIERS) {
      for (const short of [false, true]) {
        const rows = await db
          .selectFrom("tasks")
          .select(["completion_tokens", "assigned_at", "first_token_at", "completed_at"])
          .where("status", "=", "completed")
          .where("difficulty", "=", difficulty)
          .where("tier", "=", tier)
          .where("completion_tokens", short ? "<" : ">=", SHORT_ANSWER_TOKENS)
          .where("completed_at", "is not", null)
          .orderBy("created_at", "desc")
          .limit(tracker.windowSize)
          .execute();
        for (const row of rows.reverse()) tracker.record(timingOf(difficulty, tier, row));
      }
    }
  }
  return tracker;
}

function timingOf(
  difficulty: Difficulty,
  tier: NodeTier,
  row: { completion_tokens: number; assigned_at: Date | null; first_token_at: Date | null; completed_at: Date | null },
): CompletionTiming {
  const end = row.completed_at?.getTime() ?? 0;
  return {
    difficulty,
    tier,
    completionTokens: row.completion_tokens,
    generationMs: row.first_token_at ? end - row.first_token_at.getTime() : 0,
    ...(row.assigned_at ? { responseMs: end - row.assigned_at.getTime() } : {}),
  };
}
