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
 * statement, so a crash half-way leaves no task failed without its event; then deletes its journal's batch marks.
 * Returns how many were ended. Nothing is written to reputation or payouts: the node did not fail, and an
 * unfinished task earns nothing.
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
  // none of its journal's batches can be tried again: their marks (journal-batch.ts) have done their work
  await db.deleteFrom("journal_batches").where("instance", "=", instance).execute();
  return Number(result.numInsertedOrUpdatedRows ?? 0n);
}
