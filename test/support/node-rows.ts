// Rows inserted directly, as the scenarios of the reputation, journal and liveness tests need them: accounts, nodes,
// sessions and tasks; and the reputation read back.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import { type Database, json } from "../../coordinator/db/schema.ts";
import type { Difficulty, NodeTier } from "../../common/vocabulary.ts";
import type { TaskOutcomeInput } from "../../coordinator/reputation/outcomes.ts";

export interface FixtureNode {
  id: string;
  accountId: string;
}

export async function insertNode(
  db: Kysely<Database>,
  options: {
    reputation?: number;
    tier?: NodeTier;
    promisedHours?: number[];
    promisedSince?: Date;
    firstSeenAt?: Date;
    lastSeenAt?: Date;
    accountId?: string;
  } = {},
): Promise<FixtureNode> {
  const accountId =
    options.accountId ??
    (
      await db
        .insertInto("accounts")
        .values({ key_hash: createHash("sha256").update(randomBytes(16)).digest("hex") })
        .returning("id")
        .executeTakeFirstOrThrow()
    ).id;
  const id = `node-${randomBytes(5).toString("hex")}`;
  await db
    .insertInto("nodes")
    .values({
      id,
      account_id: accountId,
      tier: options.tier ?? "MID",
      model_name: "qwen2.5-14b-instruct-q4_k_m.gguf",
      parameter_count: 14_000_000_000,
      tokens_per_second: 20,
      agent_version: "0.1.0",
      ...(options.reputation !== undefined ? { reputation: options.reputation } : {}),
      ...(options.promisedHours ? { promised_hours: json(options.promisedHours) } : {}),
      ...(options.promisedSince ? { promised_hours_since: options.promisedSince } : {}),
      ...(options.firstSeenAt ? { first_seen_at: options.firstSeenAt } : {}),
      ...(options.lastSeenAt ? { last_seen_at: options.lastSeenAt } : {}),
    })
    .execute();
  return { id, accountId };
}

export async function insertSession(
  db: Kysely<Database>,
  nodeId: string,
  from: string,
  to: string | null,
): Promise<void> {
  await db
    .insertInto("node_sessions")
    .values({
      node_id: nodeId,
      coordinator_instance: "test",
      connected_at: new Date(from),
      disconnected_at: to === null ? null : new Date(to),
    })
    .execute();
}

/** A completed task of `node` with the given timing; returns its id. */
export async function insertCompletedTask(
  db: Kysely<Database>,
  node: FixtureNode,
  options: {
    difficulty?: Difficulty;
    tier?: NodeTier;
    completionTokens?: number;
    generationMs?: number;
    responseMs?: number;
  } = {},
): Promise<string> {
  const id = randomUUID();
  const completedAt = Date.now();
  const generationMs = options.generationMs ?? 10_000;
  const responseMs = options.responseMs ?? generationMs + 500;
  await db
    .insertInto("tasks")
    .values({
      id,
      status: "completed",
      difficulty: options.difficulty ?? "SIMPLE",
      tier: options.tier ?? "MID",
      node_id: node.id,
      completion_tokens: options.completionTokens ?? 100,
      assigned_at: new Date(completedAt - responseMs),
      first_token_at: new Date(completedAt - generationMs),
      completed_at: new Date(completedAt),
    })
    .execute();
  return id;
}

/** A task row in flight (the ledger needs one to point at for timeouts and invalid responses). */
export async function insertTask(
  db: Kysely<Database>,
  node: FixtureNode,
  difficulty: Difficulty = "SIMPLE",
): Promise<string> {
  const id = randomUUID();
  await db.insertInto("tasks").values({ id, status: "streaming", difficulty, tier: "MID", node_id: node.id }).execute();
  return id;
}

/** What the recorder is told when `nodeId` completed a SIMPLE task (80 tokens in 4 s) on `node`'s account. */
export function completionOf(node: FixtureNode, taskId: string, nodeId = node.id): TaskOutcomeInput {
  return {
    nodeId,
    accountId: node.accountId,
    taskId,
    difficulty: "SIMPLE",
    tier: "MID",
    outcome: "completed",
    completionTokens: 80,
    generationMs: 4_000,
  };
}

export async function reputationOf(db: Kysely<Database>, nodeId: string): Promise<number> {
  const row = await db.selectFrom("nodes").select("reputation").where("id", "=", nodeId).executeTakeFirstOrThrow();
  return row.reputation;
}

export async function eventsOf(db: Kysely<Database>, nodeId: string) {
  return db.selectFrom("reputation_events").selectAll().where("node_id", "=", nodeId).orderBy("id").execute();
}
