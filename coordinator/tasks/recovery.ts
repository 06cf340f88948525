// Ends the tasks a coordinator instance left unfinished when it stopped without ending them (SIGKILL, a crash).
import { sql, type Kysely } from "kysely";
import type { Database, TaskStatus } from "../db/schema.ts";

/** The statuses of a task that some coordinator is still working on. */
const OPEN_TASK_STATUSES = ["queued", "assigned", "streaming"] as const satisfies readonly TaskStatus[];

/** The failure reason of a task whose coordinator stopped under it. */
export function stoppedReason(instance: string): string {
  return `coordinator ${instance} stopped before the task ended`;
}

/**
 * Fails every open task of `instance`, with the reason, and records the failure in each task's history: one
 * statement, so a crash half-way leaves no task failed without its event. Returns how many were ended. Nothing is
 * written to reputation or payouts: the node did not fail, and an unfinished task earns nothing.
 */
export async function endTasksOfInstance(db: Kysely<Database>, instance: string): Promise<number> {
  const reason = stoppedReason(instance);
  const result = await db
    .with("ended", (qb) =>
      qb
        .updateTable("tasks")
        .set({ status: "failed", failure_reason: reason, completed_at: sql<Date>`now()` })
        .where("coordinator_instance", "=", instance)
        .where("status", "in", OPEN_TASK_STATUSES)
        .returning(["id", "node_id"]),
    )
    .insertInto("task_events")
    .columns(["task_id", "status", "node_id", "detail"])
    .expression((eb) =>
      eb
        .selectFrom("ended")
        .select([
          "ended.id",
          sql<TaskStatus>`'failed'`.as("status"),
          "ended.node_id",
          sql<string>`${reason}`.as("detail"),
        ]),
    )
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0n);
}

/**
 * Deletes the batch marks (journal-batch.ts) of `instance`'s journal: only once no batch of it can be tried again (its
 * previous run, at its start; itself, retiring). A peer that sweeps it keeps them: a coordinator taken for dead while
 * it was only cut off asks its mark, when the database is back, whether its last batch landed.
 */
export async function forgetMarks(db: Kysely<Database>, instance: string): Promise<void> {
  await db.deleteFrom("journal_batches").where("instance", "=", instance).execute();
}

/** How long the marks of a coordinator that no longer heartbeats are kept before forgetOrphanedMarks deletes them. */
export const ORPHANED_MARK_RETENTION_MS = 60 * 60_000;

/**
 * Deletes the marks older than `olderThanMs` whose journal's coordinator has no row (swept or gone): a journal deletes
 * each previous mark itself, so these are the last marks of coordinators that stopped without retiring.
 */
export async function forgetOrphanedMarks(db: Kysely<Database>, olderThanMs: number): Promise<number> {
  const result = await db
    .deleteFrom("journal_batches")
    .where("written_at", "<", sql<Date>`now() - make_interval(secs => ${olderThanMs / 1000})`)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom("coordinator_instances")
            .select("coordinator_instances.instance")
            .whereRef("coordinator_instances.instance", "=", "journal_batches.instance"),
        ),
      ),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
