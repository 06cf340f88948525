// Which coordinators are alive (coordinator_instances), and ending the unfinished tasks and node sessions of those
// that are not: this coordinator's own previous run at start, crashed peers while it runs.
import { sql, type Kysely } from "kysely";
import type { Logger } from "pino";
import type { Database } from "../db/schema.ts";
import { closeOrphanedSessions } from "../nodes/store.ts";
import { endTasksOfInstance, forgetMarks, forgetOrphanedMarks, ORPHANED_MARK_RETENTION_MS } from "../tasks/recovery.ts";

export interface InstanceWatchOptions {
  db: Kysely<Database>;
  /** This coordinator's name (COORDINATOR_INSTANCE); it must be unique among coordinators sharing a database. */
  instance: string;
  /** How often this coordinator says it is alive and looks for dead peers (INSTANCE_HEARTBEAT_MS). */
  heartbeatMs: number;
  /** A peer silent for this long is dead (INSTANCE_DEAD_AFTER_MS). */
  deadAfterMs: number;
  logger: Logger;
}

export interface InstanceWatch {
  stop(): void;
  /** Graceful shutdown, after the task journal is flushed: ends what is still open and removes this instance. */
  retire(): Promise<void>;
}

/**
 * At start, before any task of this run exists: whatever a previous run under the same name left open (it was
 * killed, or lost its database while stopping) is ended now, then this run is announced and dead peers are swept.
 */
export async function recoverAtStart(options: InstanceWatchOptions): Promise<void> {
  const { db, instance, logger } = options;
  const ended = await endTasksOfInstance(db, instance);
  // none of the previous run's batches can be tried again: their marks (journal-batch.ts) have done their work
  await forgetMarks(db, instance);
  await closeOrphanedSessions(db, instance);
  if (ended > 0) logger.warn({ instance, ended }, "ended the tasks a previous run of this coordinator left unfinished");
  await db
    .insertInto("coordinator_instances")
    .values({ instance, started_at: sql<Date>`now()`, last_seen_at: sql<Date>`now()` })
    .onConflict((oc) =>
      oc.column("instance").doUpdateSet({ started_at: sql<Date>`now()`, last_seen_at: sql<Date>`now()` }),
    )
    .execute();
  await sweepDeadInstances(options);
}

/** Heartbeats and sweeps every heartbeatMs until stopped; a failed tick is logged and the next one tries again. */
export function startInstanceWatch(options: InstanceWatchOptions): InstanceWatch {
  const { db, instance, logger } = options;
  let ticking = false;
  const tick = async () => {
    if (ticking) return; // a slow database: the next tick would only pile up behind this one
    ticking = true;
    try {
      await heartbeat(db, instance);
      await sweepDeadInstances(options);
    } catch (err) {
      logger.warn({ err: err instanceof Error ? err.message : String(err) }, "coordinator heartbeat failed");
    } finally {
      ticking = false;
    }
  };
  const timer = setInterval(() => void tick(), options.heartbeatMs).unref();
  return {
    stop: () => clearInterval(timer),
    async retire() {
      clearInterval(timer);
      try {
        await db.transaction().execute(async (tx) => {
          await endTasksOfInstance(tx, instance);
          await forgetMarks(tx, instance);
          await tx.deleteFrom("coordinator_instances").where("instance", "=", instance).execute();
        });
      } catch (err) {
        // the row stays: a peer, or this coordinator's next start, ends what is left
        logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          "could not retire this coordinator instance",
        );
      }
    },
  };
}

/** Upserts: a peer may have taken this instance for dead during a long outage and removed its row. */
async function heartbeat(db: Kysely<Database>, instance: string): Promise<void> {
  await db
    .insertInto("coordinator_instances")
    .values({ instance, last_seen_at: sql<Date>`now()` })
    .onConflict((oc) => oc.column("instance").doUpdateSet({ last_seen_at: sql<Date>`now()` }))
    .execute();
}

/**
 * Ends the open tasks and sessions of every peer whose heartbeat is older than deadAfterMs. Each peer is claimed by
 * deleting its row in the same transaction, so two coordinators sweeping at once end it once, and a crash half-way
 * leaves the row for the next sweep. Its journal's marks stay (forgetMarks says why) until they are an hour old.
 * Returns the instances ended.
 */
export async function sweepDeadInstances(
  options: Pick<InstanceWatchOptions, "db" | "instance" | "deadAfterMs" | "logger">,
): Promise<string[]> {
  const { db, instance: self, logger } = options;
  const stale = sql<Date>`now() - make_interval(secs => ${options.deadAfterMs / 1000})`;
  const candidates = await db
    .selectFrom("coordinator_instances")
    .select("instance")
    .where("instance", "!=", self)
    .where("last_seen_at", "<", stale)
    .execute();
  const swept: string[] = [];
  for (const { instance } of candidates) {
    const ended = await db.transaction().execute(async (tx) => {
      const claimed = await tx
        .deleteFrom("coordinator_instances")
        .where("instance", "=", instance)
        .where("last_seen_at", "<", stale)
        .returning("instance")
        .executeTakeFirst();
      if (!claimed) return undefined; // it came back, or another peer swept it first
      const tasks = await endTasksOfInstance(tx, instance);
      await closeOrphanedSessions(tx, instance);
      return tasks;
    });
    if (ended === undefined) continue;
    swept.push(instance);
    logger.warn({ instance, ended }, "ended the unfinished tasks of a coordinator that stopped heartbeating");
  }
  await forgetOrphanedMarks(db, ORPHANED_MARK_RETENTION_MS);
  return swept;
}
