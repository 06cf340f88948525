// Nodes as the network reports them: live ones from this coordinator's registry, the others from their rows.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Kysely } from "kysely";
import type { LeaderboardEntrySchema, NodeInfoSchema } from "../../gen/iris/v1/network_pb.ts";
import type { Database, NodeRow } from "../db/schema.ts";
import { measurementKey } from "../nodes/measurements.ts";
import type { LiveNode, NodeRegistry } from "../nodes/registry.ts";
import { tierToProto } from "../../common/vocabulary.ts";
import { spotCheckCoverage } from "./check-coverage.ts";
import { fingerprintPeers, nodeVerification, storedVerification } from "./verification.ts";

export type NodeInfoInit = MessageInitShape<typeof NodeInfoSchema>;
export type LeaderboardEntryInit = MessageInitShape<typeof LeaderboardEntrySchema>;

/** A connected node; `peers` (the live nodes) tell whether its model file's fingerprint agrees with theirs. */
function liveNodeInfo(node: LiveNode, peers: Iterable<LiveNode> = []): NodeInfoInit {
  const c = node.capabilities;
  return {
    nodeId: node.id,
    tier: tierToProto[node.tier],
    modelName: c.modelName,
    parameterCount: BigInt(c.parameterCount),
    quantization: c.quantization,
    gpus: c.gpus.map((g) => ({
      name: g.name,
      vramTotalMb: BigInt(g.vramTotalMb),
      vramUsedMb: BigInt(g.vramUsedMb),
      utilizationPercent: g.utilizationPercent,
    })),
    tokensPerSecond: c.tokensPerSecond,
    reputation: node.reputation,
    load: node.load,
    activeTasks: node.tasks.size,
    maxConcurrentTasks: c.maxConcurrentTasks,
    online: true,
    lastSeenUnixMs: BigInt(node.lastSeenAt),
    suspended: node.suspended,
    contextLength: c.contextLength,
    tierReason: node.tierReason,
    verification: nodeVerification(c, node.measured, node.size, fingerprintPeers(c, node.id, peers)),
  };
}

const storedColumns = [
  "id",
  "tier",
  "model_name",
  "parameter_count",
  "quantization",
  "gpus",
  "tokens_per_second",
  "reputation",
  "max_concurrent_tasks",
  "last_seen_at",
  "suspended_at",
  "context_length",
  "model_sha256",
  "measured",
] as const;
type StoredNode = Pick<NodeRow, (typeof storedColumns)[number]>;

function storedNodeInfo(row: StoredNode): NodeInfoInit {
  return {
    nodeId: row.id,
    tier: tierToProto[row.tier],
    modelName: row.model_name,
    parameterCount: BigInt(row.parameter_count),
    quantization: row.quantization ?? "",
    gpus: row.gpus.map((g) => ({ name: g.name, vramTotalMb: BigInt(g.vram_mb) })),
    tokensPerSecond: row.tokens_per_second,
    reputation: row.reputation,
    load: 0,
    activeTasks: 0,
    maxConcurrentTasks: row.max_concurrent_tasks,
    online: false,
    lastSeenUnixMs: BigInt(row.last_seen_at.getTime()),
    suspended: row.suspended_at !== null,
    contextLength: row.context_length ?? 0,
    verification: storedVerification(declaredOf(row), measurementKey(declaredOf(row)), row.measured),
  };
}

function declaredOf(row: StoredNode) {
  return {
    modelName: row.model_name,
    quantization: row.quantization ?? "",
    ...(row.model_sha256 ? { modelSha256: row.model_sha256 } : {}),
    tokensPerSecond: row.tokens_per_second,
    contextLength: row.context_length ?? 0,
  };
}

/** Connected nodes, most reputable first (ties by id, so pages are stable). */
function onlineNodes(registry: NodeRegistry): LiveNode[] {
  return [...registry.nodes()]
    .filter((node) => node.connected)
    .sort((a, b) => b.reputation - a.reputation || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Online nodes first, then offline ones, each group by reputation. "Online" means connected to this
 * coordinator: a row whose status says online but that is not in the registry is listed as offline.
 */
export async function listNodes(
  db: Kysely<Database>,
  registry: NodeRegistry,
  options: { onlineOnly: boolean; limit: number },
): Promise<NodeInfoInit[]> {
  const online = onlineNodes(registry).slice(0, options.limit);
  const wanted = options.limit - online.length;
  const info = (node: LiveNode) => liveNodeInfo(node, registry.nodes());
  if (options.onlineOnly || wanted <= 0) return withCoverage(db, online.map(info));
  const liveIds = new Set(online.map((node) => node.id));
  // over-fetch by the live count and drop those rows, rather than sending every live id to the database
  const rows = await db
    .selectFrom("nodes")
    .select(storedColumns)
    .orderBy("reputation", "desc")
    .orderBy("id")
    .limit(wanted + liveIds.size)
    .execute();
  const offline = rows.filter((row) => !liveIds.has(row.id)).slice(0, wanted);
  return withCoverage(db, [...online.map(info), ...offline.map(storedNodeInfo)]);
}

/** Adds each node's spot-check coverage (one pair of grouped queries for the whole page). */
async function withCoverage(db: Kysely<Database>, nodes: NodeInfoInit[]): Promise<NodeInfoInit[]> {
  const coverage = await spotCheckCoverage(
    db,
    nodes.map((node) => node.nodeId!),
  );
  return nodes.map((node) => ({ ...node, spotChecks: coverage.get(node.nodeId!) }) as NodeInfoInit);
}

/** One node, live when connected; undefined for an id never registered. */
export async function findNodeInfo(
  db: Kysely<Database>,
  registry: NodeRegistry,
  nodeId: string,
): Promise<NodeInfoInit | undefined> {
  const live = registry.get(nodeId);
  if (live?.connected) return (await withCoverage(db, [liveNodeInfo(live, registry.nodes())]))[0];
  const row = await db.selectFrom("nodes").select(storedColumns).where("id", "=", nodeId).executeTakeFirst();
  return row && (await withCoverage(db, [storedNodeInfo(row)]))[0];
}

/**
 * Nodes ranked by their recorded reputation with their completed-task counts. Equal reputations share a
 * rank and the next rank skips ("1, 2, 2, 4"), so a rank never depends on the order of node ids.
 */
export async function leaderboard(db: Kysely<Database>, limit: number): Promise<LeaderboardEntryInit[]> {
  const rows = await db
    .selectFrom("nodes")
    .select(["id", "reputation", "tier"])
    .orderBy("reputation", "desc")
    .orderBy("id")
    .limit(limit)
    .execute();
  if (rows.length === 0) return [];
  const counts = await db
    .selectFrom("tasks")
    .select((eb) => ["node_id", eb.fn.countAll<number>().as("completed")])
    .where("status", "=", "completed")
    .where(
      "node_id",
      "in",
      rows.map((row) => row.id),
    )
    .groupBy("node_id")
    .execute();
  const completed = new Map(counts.map((row) => [row.node_id, Number(row.completed)]));
  let rank = 0;
  return rows.map((row, index) => {
    if (index === 0 || row.reputation !== rows[index - 1]!.reputation) rank = index + 1;
    return {
      rank,
      nodeId: row.id,
      reputation: row.reputation,
      tier: tierToProto[row.tier],
      tasksCompleted: BigInt(completed.get(row.id) ?? 0),
    };
  });
}
