// Suspension of nodes after repeated mismatches (consensus minority, failed spot checks, failed canaries):
// the count and the suspension live on the node's row, so every coordinator sharing the database sees them, at
// the node's registration and, for nodes connected now, at the next sync (SUSPENSION_SYNC_MS).
import { sql, type Kysely } from "kysely";
import type { Database } from "../db/schema.ts";

export interface MismatchCount {
  mismatches: number;
  /** The node is suspended (now or before). */
  suspended: boolean;
  /** This mismatch is the one that suspended it. */
  newlySuspended: boolean;
}

/**
 * Counts one mismatch and suspends the node when the count reaches `suspendAfter`, in one UPDATE (the row
 * lock serialises concurrent mismatches). undefined for an unknown node.
 */
export async function recordMismatch(
  db: Kysely<Database>,
  nodeId: string,
  suspendAfter: number,
): Promise<MismatchCount | undefined> {
  const row = await db
    .updateTable("nodes")
    .set((eb) => ({
      mismatches: eb("mismatches", "+", 1),
      // the right-hand side reads the row as it was before this UPDATE
      suspended_at: sql<Date | null>`CASE WHEN suspended_at IS NULL AND mismatches + 1 >= ${suspendAfter}
        THEN now() ELSE suspended_at END`,
    }))
    .where("id", "=", nodeId)
    // now() is the transaction's start: equal only when this statement set it
    .returning([
      "mismatches",
      sql<boolean>`suspended_at IS NOT NULL`.as("suspended"),
      sql<boolean>`suspended_at IS NOT DISTINCT FROM now()`.as("newly"),
    ])
    .executeTakeFirst();
  return row && { mismatches: row.mismatches, suspended: row.suspended, newlySuspended: row.newly };
}

/** Lifts a suspension and forgets the mismatches; false for an unknown node. */
export async function clearSuspension(db: Kysely<Database>, nodeId: string): Promise<boolean> {
  const result = await db
    .updateTable("nodes")
    .set({ mismatches: 0, suspended_at: null })
    .where("id", "=", nodeId)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Whether the node is suspended (read at registration). */
export async function isSuspended(db: Kysely<Database>, nodeId: string): Promise<boolean> {
  const row = await db.selectFrom("nodes").select("suspended_at").where("id", "=", nodeId).executeTakeFirst();
  return row?.suspended_at != null;
}

/**
 * Brings the live nodes' suspension in line with the database: a mismatch counted by another coordinator (a
 * spot check finishing after the node moved here) suspends, another coordinator's ClearNode lifts. Returns the
 * ids whose state changed.
 */
export async function syncSuspensions(
  db: Kysely<Database>,
  live: readonly { id: string; suspended: boolean }[],
): Promise<string[]> {
  if (live.length === 0) return [];
  const rows = await db
    .selectFrom("nodes")
    .select("id")
    .where("suspended_at", "is not", null)
    .where(
      "id",
      "in",
      live.map((node) => node.id),
    )
    .execute();
  const suspended = new Set(rows.map((row) => row.id));
  const changed: string[] = [];
  for (const node of live) {
    if (node.suspended === suspended.has(node.id)) continue;
    node.suspended = suspended.has(node.id);
    changed.push(node.id);
  }
  return changed;
}
