// A network to list, seeded directly into the database and the registry: two accounts, connected and offline nodes,
// tasks, reputation events and payouts, as the NetworkService tests read them.
import type { Kysely } from "kysely";
import type { NodeTier } from "../../common/vocabulary.ts";
import { hashAccountKey } from "../../coordinator/accounts/keys.ts";
import { json, type Database, type JsonValue, type ReputationRule } from "../../coordinator/db/schema.ts";
import type { NodeRegistry } from "../../coordinator/nodes/registry.ts";
import { liveNode, T0 } from "./live-nodes.ts";

export const ALICE_KEY = "1111 2222 3333 4444";
export const BOB_KEY = "5555 6666 7777 8888";

/**
 * Two accounts; six node rows (live-pro and live-basic connected, closing's stream just ended, off-1/2/3
 * offline, off-2's row wrongly saying online); 60 tasks; four reputation events; payouts for two months.
 */
export async function seedNetwork(
  db: Kysely<Database>,
  registry: NodeRegistry,
): Promise<{ alice: string; bob: string }> {
  const ids = { alice: "", bob: "" };
  for (const [name, key] of [
    ["alice", ALICE_KEY],
    ["bob", BOB_KEY],
  ] as const) {
    const row = await db
      .insertInto("accounts")
      .values({ key_hash: hashAccountKey(key.replaceAll(" ", "")) })
      .returning("id")
      .executeTakeFirstOrThrow();
    ids[name] = row.id;
  }
  // recorded reputations; the live nodes report their own (live-basic: 125 live, 120 recorded)
  const rows: [string, string, NodeTier, number][] = [
    ["live-pro", ids.alice, "PRO", 180],
    ["live-basic", ids.bob, "BASIC", 120],
    ["off-1", ids.alice, "MID", 150],
    ["off-3", ids.bob, "MID", 150],
    ["off-2", ids.bob, "BASIC", 90],
    ["closing", ids.bob, "MID", 60],
  ];
  for (const [id, accountId, tier, reputation] of rows) {
    await db
      .insertInto("nodes")
      .values({
        id,
        account_id: accountId,
        tier,
        model_name: `${id}-stored`,
        parameter_count: 7e9,
        quantization: null,
        tokens_per_second: 12,
        gpus: json([{ name: "RTX 3060", vram_mb: 12_288 }]),
        agent_version: "0.0.9",
        reputation,
        // off-2 still says online: another coordinator's node, or a crash; this coordinator lists it offline
        status: id === "off-2" ? "online" : "offline",
        last_seen_at: new Date(T0 - 60_000),
      })
      .execute();
  }
  registry.add(liveNode("live-pro", ids.alice, "PRO", 180, 2));
  registry.add(liveNode("live-basic", ids.bob, "BASIC", 125, 1));
  const closing = liveNode("closing", ids.bob, "MID", 60, 0);
  registry.add(closing);
  closing.disconnect(); // its stream ended; the registry has not dropped it yet

  const task = (n: number, values: object) => ({
    difficulty: "SIMPLE" as const,
    created_at: new Date(T0 + n * 1000),
    ...values,
  });
  const parent = await db
    .insertInto("tasks")
    .values(task(1, { status: "completed", tier: "PRO", node_id: "live-pro", division_mode: "subtasks" }))
    .returning("id")
    .executeTakeFirstOrThrow();
  await db
    .insertInto("tasks")
    .values([
      task(2, {
        status: "completed",
        difficulty: "COMPLEX",
        tier: "PRO",
        node_id: "live-pro",
        parent_id: parent.id,
        division_mode: "subtasks",
        prompt_tokens: 12,
        completion_tokens: 345,
        ttft_ms: 80,
        total_ms: 2_500,
      }),
      task(3, { status: "completed", tier: "MID", node_id: "off-1" }),
      task(4, { status: "failed", tier: "BASIC", node_id: "live-basic", failure_reason: "node timed out" }),
      task(5, { status: "queued" }),
      ...Array.from({ length: 55 }, (_, i) => task(-100 - i, { status: "cancelled", tier: "BASIC", node_id: "off-2" })),
    ])
    .execute();

  // rows as the reputation ledger writes them; off-1's middle event was credited to bob before a relink
  const event = (
    n: number,
    nodeId: string,
    accountId: string,
    rule: ReputationRule,
    delta: number,
    after: number,
    evidence?: JsonValue,
  ) => ({
    node_id: nodeId,
    account_id: accountId,
    rule,
    delta,
    reputation_after: after,
    created_at: new Date(T0 + n * 1000),
    evidence: evidence === undefined ? null : json(evidence),
  });
  await db
    .insertInto("reputation_events")
    .values([
      event(1, "off-1", ids.alice, "task_completed", 10, 110),
      event(2, "off-1", ids.bob, "admin", 50, 160, { note: "restored" }),
      event(3, "off-1", ids.alice, "timeout", -10, 150, "timed out after 60 s"),
      event(4, "live-pro", ids.alice, "admin", 80, 180),
    ])
    .execute();
  await db
    .insertInto("payout_runs")
    .values([
      { month: "2029-11", pool: 100, total_contribution: 30 },
      { month: "2029-12", pool: 100, total_contribution: 10 },
    ])
    .execute();
  await db
    .insertInto("payouts")
    .values([
      { month: "2029-11", account_id: ids.alice, amount: 67, contribution: 20, share: 0.67 },
      { month: "2029-11", account_id: ids.bob, amount: 33, contribution: 10, share: 0.33 },
      { month: "2029-12", account_id: ids.bob, amount: 100, contribution: 10, share: 1 },
    ])
    .execute();
  return ids;
}
