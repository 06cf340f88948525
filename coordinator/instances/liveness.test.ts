// Ending what a dead coordinator left open, on both engines: its own previous run at start, a silent peer on a
// sweep (once, even when swept twice), live peers never; the tasks fail with a reason, the sessions close; the task
// journal's batch marks go at its own next start, and a swept peer's only once they are an hour old.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase, testEngines } from "../../test/support/database.ts";
import type { TaskStatus } from "../db/schema.ts";
import { insertNode, type FixtureNode } from "../../test/support/node-rows.ts";
import { stoppedReason } from "../tasks/recovery.ts";
import { recoverAtStart, startInstanceWatch, sweepDeadInstances } from "./liveness.ts";

const logger = pino({ level: "silent" });
const suffix = () => randomUUID().slice(0, 8);

describe.each(testEngines())("coordinator liveness on $name", ({ engine }) => {
  let test: TestDatabase;
  let node: FixtureNode;
  beforeAll(async () => {
    test = await createTestDatabase({ engine });
    node = await insertNode(test.db);
  });
  afterAll(async () => {
    await test?.close();
  });

  async function task(instance: string, status: TaskStatus): Promise<string> {
    const id = randomUUID();
    const failure = status === "failed" ? { failure_reason: "node went away" } : {};
    await test.db
      .insertInto("tasks")
      .values({ id, status, difficulty: "SIMPLE", node_id: node.id, coordinator_instance: instance, ...failure })
      .execute();
    return id;
  }
  const row = (id: string) =>
    test.db
      .selectFrom("tasks")
      .select(["status", "failure_reason", "completed_at"])
      .where("id", "=", id)
      .executeTakeFirstOrThrow();
  const failedEvents = (id: string) =>
    test.db
      .selectFrom("task_events")
      .select("detail")
      .where("task_id", "=", id)
      .where("status", "=", "failed")
      .execute();
  async function session(instance: string): Promise<string> {
    const { id } = await test.db
      .insertInto("node_sessions")
      .values({ node_id: node.id, coordinator_instance: instance })
      .returning("id")
      .executeTakeFirstOrThrow();
    return id;
  }
  const sessionOpen = async (id: string) =>
    (await test.db.selectFrom("node_sessions").select("disconnected_at").where("id", "=", id).executeTakeFirstOrThrow())
      .disconnected_at === null;
  // a task journal batch's mark (tasks/journal-batch.ts), as the instance's journal leaves it
  async function mark(instance: string, secondsAgo = 0): Promise<string> {
    const id = randomUUID();
    const writtenAt = sql<Date>`now() - make_interval(secs => ${secondsAgo})`;
    await test.db.insertInto("journal_batches").values({ id, instance, written_at: writtenAt }).execute();
    return id;
  }
  const marked = async (id: string) =>
    (await test.db.selectFrom("journal_batches").select("id").where("id", "=", id).executeTakeFirst()) !== undefined;
  async function heartbeatAgo(instance: string, seconds: number): Promise<void> {
    const at = sql<Date>`now() - make_interval(secs => ${seconds})`;
    await test.db
      .insertInto("coordinator_instances")
      .values({ instance, last_seen_at: at })
      .onConflict((oc) => oc.column("instance").doUpdateSet({ last_seen_at: at }))
      .execute();
  }

  it(
    "at start, fails the tasks its previous run left open and closes that run's sessions, and nothing " + "else",
    async () => {
      const me = `me-${suffix()}`;
      const open = [await task(me, "queued"), await task(me, "assigned"), await task(me, "streaming")];
      const done = await task(me, "completed");
      const otherPeers = await task(`peer-${suffix()}`, "streaming");
      const mySession = await session(me);
      const [myMark, peersMark] = [await mark(me), await mark(`peer-${suffix()}`)];
      await recoverAtStart({ db: test.db, instance: me, heartbeatMs: 10_000, deadAfterMs: 60_000, logger });
      for (const id of open) {
        expect(await row(id)).toMatchObject({
          status: "failed",
          failure_reason: stoppedReason(me),
          completed_at: expect.any(Date),
        });
        expect(await failedEvents(id)).toEqual([{ detail: `coordinator ${me} stopped before the task ended` }]);
      }
      expect((await row(done)).status).toBe("completed");
      expect((await row(otherPeers)).status).toBe("streaming");
      expect(await sessionOpen(mySession)).toBe(false);
      // the previous run's last batch can never be tried again; a live peer's can
      expect([await marked(myMark), await marked(peersMark)]).toEqual([false, true]);
      const mine = await test.db
        .selectFrom("coordinator_instances")
        .selectAll()
        .where("instance", "=", me)
        .executeTakeFirstOrThrow();
      expect(mine.last_seen_at).toBeInstanceOf(Date);
    },
  );

  it("sweeps a peer whose heartbeat is stale, once, and never a live one", async () => {
    const dead = `dead-${suffix()}`;
    const live = `live-${suffix()}`;
    await heartbeatAgo(dead, 120);
    await heartbeatAgo(live, 1);
    const deadTask = await task(dead, "streaming");
    const liveTask = await task(live, "streaming");
    const deadSession = await session(dead);
    const liveSession = await session(live);
    const [deadMark, liveMark] = [await mark(dead), await mark(live)];
    const options = { db: test.db, instance: `sweeper-${suffix()}`, deadAfterMs: 60_000, logger };
    expect(await sweepDeadInstances(options)).toContain(dead);
    expect(await sweepDeadInstances(options)).not.toContain(dead);
    expect(await row(deadTask)).toMatchObject({ status: "failed", failure_reason: stoppedReason(dead) });
    expect(await failedEvents(deadTask)).toHaveLength(1);
    expect((await row(liveTask)).status).toBe("streaming");
    expect(await sessionOpen(deadSession)).toBe(false);
    expect(await sessionOpen(liveSession)).toBe(true);
    // a coordinator taken for dead may only have been cut off: back, it asks its mark whether its last batch landed
    expect([await marked(deadMark), await marked(liveMark)]).toEqual([true, true]);
    const left = await test.db
      .selectFrom("coordinator_instances")
      .select("instance")
      .where("instance", "in", [dead, live])
      .execute();
    expect(left).toEqual([{ instance: live }]);
  });

  it("forgets a swept peer's journal marks once they are an hour old, a live one's never", async () => {
    const [gone, live] = [`gone-${suffix()}`, `live-${suffix()}`];
    await heartbeatAgo(gone, 7_300);
    await heartbeatAgo(live, 1);
    const [goneOld, goneRecent, liveOld] = [await mark(gone, 7_200), await mark(gone, 60), await mark(live, 7_200)];
    const options = { db: test.db, instance: `sweeper-${suffix()}`, deadAfterMs: 60_000, logger };
    expect(await sweepDeadInstances(options)).toContain(gone);
    expect([await marked(goneOld), await marked(goneRecent), await marked(liveOld)]).toEqual([false, true, true]);
  });

  it("heartbeats and sweeps on its own while it runs, and retires on a graceful stop", async () => {
    const me = `watch-${suffix()}`;
    const options = { db: test.db, instance: me, heartbeatMs: 50, deadAfterMs: 1_000, logger };
    await recoverAtStart(options);
    const watch = startInstanceWatch(options);
    try {
      const dead = `dead-${suffix()}`;
      await heartbeatAgo(dead, 5);
      const deadTask = await task(dead, "assigned");
      await expect.poll(async () => (await row(deadTask)).status, { timeout: 5_000 }).toBe("failed");
      // it heartbeats: its row's last_seen_at moves on (no bound on how recent, which a loaded machine could miss)
      const lastSeen = async () =>
        (
          await test.db
            .selectFrom("coordinator_instances")
            .select("last_seen_at")
            .where("instance", "=", me)
            .executeTakeFirstOrThrow()
        ).last_seen_at.getTime();
      const first = await lastSeen();
      await expect.poll(lastSeen, { timeout: 5_000 }).toBeGreaterThan(first);
    } finally {
      await watch.retire();
    }
    const gone = await test.db
      .selectFrom("coordinator_instances")
      .select("instance")
      .where("instance", "=", me)
      .execute();
    expect(gone).toEqual([]);
  });
});
