// The nodes and node_sessions tables: registration, sessions, last-seen times.
import { sql, type Kysely, type Transaction } from "kysely";
import { recordset, type ColumnTypes } from "../db/recordset.ts";
import { json, type Database, type JsonValue } from "../db/schema.ts";
import type { NodeTier } from "../../common/vocabulary.ts";
import type { MeasuredSnapshot } from "./measurements.ts";
import type { NodeCapabilities } from "./registry.ts";

export interface NodeRegistration {
  id: string;
  accountId: string;
  tier: NodeTier;
  capabilities: NodeCapabilities;
  publicKey: Uint8Array | undefined;
  promisedHoursUtc: number[];
}

/**
 * Who a node id belongs to: the account and public key that registered it (the key is null after a move is pending).
 */
export interface NodeBinding {
  accountId: string;
  publicKey: Buffer | null;
}

export async function nodeBinding(db: Kysely<Database>, nodeId: string): Promise<NodeBinding | undefined> {
  const row = await db
    .selectFrom("nodes")
    .select(["account_id", "public_key"])
    .where("id", "=", nodeId)
    .executeTakeFirst();
  return row && { accountId: row.account_id, publicKey: row.public_key };
}

/**
 * Inserts or refreshes a node's row (capabilities change between runs) and returns its reputation; undefined when
 * the id is bound to another account or another public key (checked in the same statement, so two registrations
 * racing for a new id cannot both win).
 */
export async function upsertNode(db: Kysely<Database>, node: NodeRegistration): Promise<number | undefined> {
  const c = node.capabilities;
  const values = {
    account_id: node.accountId,
    tier: node.tier,
    model_name: c.modelName,
    parameter_count: c.parameterCount,
    quantization: c.quantization || null,
    model_sha256: c.modelSha256 || null,
    context_length: c.contextLength || null,
    tokens_per_second: c.tokensPerSecond,
    max_concurrent_tasks: c.maxConcurrentTasks,
    gpus: json(c.gpus.map((g) => ({ name: g.name, vram_mb: g.vramTotalMb }))),
    public_key: node.publicKey && node.publicKey.length > 0 ? Buffer.from(node.publicKey) : null,
    agent_version: c.agentVersion,
    promised_hours: node.promisedHoursUtc.length > 0 ? json(node.promisedHoursUtc) : null,
    status: "online" as const,
    last_seen_at: new Date(),
  };
  const row = await db
    .insertInto("nodes")
    .values({ id: node.id, ...values })
    .onConflict((oc) =>
      oc
        .column("id")
        .doUpdateSet(values)
        .where((eb) =>
          eb.and([
            eb("nodes.account_id", "=", eb.ref("excluded.account_id")),
            eb.or([eb("nodes.public_key", "is", null), eb("nodes.public_key", "=", eb.ref("excluded.public_key"))]),
          ]),
        ),
    )
    .returning("reputation")
    .executeTakeFirst();
  return row?.reputation;
}

/** What the coordinator measured of the node before (any model; NodeMeasurements keeps only the same model's). */
export async function storedMeasurements(db: Kysely<Database>, nodeId: string): Promise<unknown> {
  const row = await db.selectFrom("nodes").select("measured").where("id", "=", nodeId).executeTakeFirst();
  return row?.measured ?? undefined;
}

/** Writes the node's measurements and the tier they gave it. */
export async function saveMeasurements(
  db: Kysely<Database>,
  nodeId: string,
  tier: NodeTier,
  snapshot: MeasuredSnapshot,
): Promise<void> {
  await db
    .updateTable("nodes")
    .set({ tier, measured: json(snapshot as unknown as JsonValue) })
    .where("id", "=", nodeId)
    .execute();
}

export async function openSession(
  db: Kysely<Database>,
  nodeId: string,
  coordinatorInstance: string,
  remoteAddress: string,
): Promise<string> {
  const row = await db
    .insertInto("node_sessions")
    .values({ node_id: nodeId, coordinator_instance: coordinatorInstance, remote_address: remoteAddress || null })
    .returning("id")
    .executeTakeFirstOrThrow();
  return row.id;
}

/** The end of one node session, as the session closer queues it (nodes/session-closer.ts). */
export interface SessionEnd {
  sessionId: string;
  nodeId: string;
  reason: string;
  at: Date;
  /** The node's measurements and the tier they gave it: set when the connection was still the registered one. */
  measured?: { tier: NodeTier; snapshot: MeasuredSnapshot };
}

/** Ends a session at once; the node goes offline unless a newer session of it is open (a replacing connection). */
export async function closeSession(
  db: Kysely<Database>,
  sessionId: string,
  nodeId: string,
  reason: string,
): Promise<void> {
  await db.transaction().execute((tx) => writeSessionEnds(tx, [{ sessionId, nodeId, reason, at: new Date() }]));
}

const SESSION_END_COLUMNS: ColumnTypes = { id: "uuid", reason: "text", at: "timestamptz" };
const MEASURED_COLUMNS: ColumnTypes = { id: "text", tier: "text", measured: "jsonb" };
const LAST_SEEN_COLUMNS: ColumnTypes = { id: "text", at: "timestamptz" };

/**
 * Writes many session ends in three statements; run it in a transaction. The sessions close first, so the last
 * statement sees every session still open: a node goes offline only when none of its sessions is (one that
 * connected again keeps its status, whether its old session closes in this batch or not). Measurements are written
 * as queued, the last of a node winning. A retry of ends already written ends no session twice: a closed session
 * keeps its first end.
 */
export async function writeSessionEnds(tx: Transaction<Database>, ends: readonly SessionEnd[]): Promise<void> {
  if (ends.length === 0) return;
  const sessions = new Map<string, { id: string; reason: string; at: Date }>();
  const lastSeen = new Map<string, { id: string; at: Date }>();
  const measured = new Map<string, { id: string; tier: NodeTier; measured: MeasuredSnapshot }>();
  for (const end of ends) {
    if (!sessions.has(end.sessionId))
      sessions.set(end.sessionId, { id: end.sessionId, reason: end.reason, at: end.at });
    const seen = lastSeen.get(end.nodeId);
    if (!seen || seen.at < end.at) lastSeen.set(end.nodeId, { id: end.nodeId, at: end.at });
    if (end.measured)
      measured.set(end.nodeId, { id: end.nodeId, tier: end.measured.tier, measured: end.measured.snapshot });
  }
  // GREATEST: an end stamped here (a JS Date, in ms) can read earlier than the database's connected_at (now(), in µs)
  // when a session ends within the millisecond it opened; a session never ends before it began
  await sql`UPDATE node_sessions SET disconnected_at = GREATEST(d.at, node_sessions.connected_at),
      disconnect_reason = d.reason
    FROM ${recordset(SESSION_END_COLUMNS, ["id", "reason", "at"], [...sessions.values()])}
    WHERE node_sessions.id = d.id AND node_sessions.id = ANY(${[...sessions.keys()]}::uuid[])
      AND node_sessions.disconnected_at IS NULL`.execute(tx);
  if (measured.size > 0) {
    await sql`UPDATE nodes SET tier = d.tier, measured = d.measured
      FROM ${recordset(MEASURED_COLUMNS, ["id", "tier", "measured"], [...measured.values()])}
      WHERE nodes.id = d.id AND nodes.id = ANY(${[...measured.keys()]}::text[])`.execute(tx);
  }
  // GREATEST: a node that registered again since its disconnect keeps the later time
  await sql`UPDATE nodes SET last_seen_at = GREATEST(nodes.last_seen_at, d.at),
      status = CASE WHEN EXISTS (
        SELECT 1 FROM node_sessions s WHERE s.node_id = nodes.id AND s.disconnected_at IS NULL
      ) THEN nodes.status ELSE 'offline' END
    FROM ${recordset(LAST_SEEN_COLUMNS, ["id", "at"], [...lastSeen.values()])}
    WHERE nodes.id = d.id AND nodes.id = ANY(${[...lastSeen.keys()]}::text[])`.execute(tx);
}

/** Binds a node id to a new public key (MoveNode); false when no node of that account has the id. */
export async function rebindNode(
  db: Kysely<Database>,
  nodeId: string,
  accountId: string,
  publicKey: Uint8Array,
): Promise<boolean> {
  const result = await db
    .updateTable("nodes")
    .set({ public_key: Buffer.from(publicKey) })
    .where("id", "=", nodeId)
    .where("account_id", "=", accountId)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Records that these nodes are alive (one statement for all, so heartbeats cost no write each). */
export async function touchNodes(db: Kysely<Database>, nodeIds: string[]): Promise<void> {
  if (nodeIds.length === 0) return;
  await db.updateTable("nodes").set({ last_seen_at: new Date() }).where("id", "in", nodeIds).execute();
}

/**
 * Closes the sessions a dead coordinator instance left open (a crash, a SIGKILL) and marks their nodes offline,
 * except nodes that already reconnected elsewhere (another open session).
 */
export async function closeOrphanedSessions(db: Kysely<Database>, coordinatorInstance: string): Promise<void> {
  const now = new Date();
  const orphans = await db
    .updateTable("node_sessions")
    .set({ disconnected_at: now, disconnect_reason: `coordinator ${coordinatorInstance} stopped` })
    .where("coordinator_instance", "=", coordinatorInstance)
    .where("disconnected_at", "is", null)
    .returning("node_id")
    .execute();
  const ids = [...new Set(orphans.map((o) => o.node_id))];
  if (ids.length === 0) return;
  await db
    .updateTable("nodes")
    .set({ status: "offline" })
    .where("id", "in", ids)
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom("node_sessions")
            .select("id")
            .whereRef("node_sessions.node_id", "=", "nodes.id")
            .where("disconnected_at", "is", null),
        ),
      ),
    )
    .execute();
}
