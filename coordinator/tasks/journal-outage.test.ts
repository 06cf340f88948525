// The task journal when PostgreSQL goes away (through a TCP proxy the test cuts): records wait, with a log line and a
// gauge, and are written exactly once when it is back, also when the reply of a batch that committed was lost.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startDatabaseProxy, type DatabaseProxy } from "../../test/support/database-proxy.ts";
import { createTestDatabase, databaseSource, type TestDatabase } from "../../test/support/database.ts";
import { openDatabase, type OpenDatabase } from "../db/connect.ts";
import { insertNode } from "../../test/support/node-rows.ts";
import { TaskJournal } from "./journal.ts";

const pacing = { firstMs: 50, maxMs: 200, logEveryMs: 60_000 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(databaseSource().kind !== "postgres")("task journal through a database outage", () => {
  let test: TestDatabase;
  let nodeId: string;
  let proxy: DatabaseProxy;
  let through: OpenDatabase;
  const logs: { level: number; msg: string; waiting?: number }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => logs.push(JSON.parse(line)) });

  beforeAll(async () => {
    test = await createTestDatabase();
    nodeId = (await insertNode(test.db)).id;
  });
  afterEach(async () => {
    await through?.close();
    await proxy?.close();
    logs.length = 0;
  });
  afterAll(async () => {
    await test?.close();
  });

  async function connectThroughProxy(): Promise<TaskJournal> {
    proxy = await startDatabaseProxy(test.url);
    through = await openDatabase({ url: proxy.url, poolSize: 2, dataDir: "", logger });
    return new TaskJournal(through.db, logger, { flushDelayMs: 5, pacing });
  }
  const statuses = (ids: string[]) =>
    test.db.selectFrom("tasks").select(["id", "status"]).where("id", "in", ids).execute();
  const eventsOf = async (id: string) =>
    (await test.db.selectFrom("task_events").select("status").where("task_id", "=", id).orderBy("id").execute()).map(
      (e) => e.status,
    );

  it("keeps the records of a 2.5 s outage waiting and writes them all when the database is back", async () => {
    const journal = await connectThroughProxy();
    const ids = Array.from({ length: 9 }, () => randomUUID());
    for (const id of ids) {
      journal.created({ id, difficulty: "SIMPLE" });
      journal.update(id, "assigned", { node_id: nodeId, tier: "MID", attempt: 1, assigned_at: new Date() }, nodeId);
      journal.update(id, "streaming", { first_token_at: new Date(), ttft_ms: 5 }, nodeId);
    }
    await journal.flush();

    await proxy.cut();
    // the clients saw these tasks done; their records must not be lost to the outage
    for (const id of ids)
      journal.update(id, "completed", { completion_tokens: 4, completed_at: new Date(), total_ms: 40 }, nodeId);
    const written = journal.flush();
    await sleep(2_500);
    expect(journal.waiting).toBe(9);
    expect(logs.some((line) => line.msg === "task records waiting for the database" && line.waiting === 9)).toBe(true);
    expect(logs.some((line) => line.msg === "task records could not be written")).toBe(false);
    expect((await statuses(ids)).every((row) => row.status === "streaming")).toBe(true);

    await proxy.restore();
    await written;
    expect(journal.waiting).toBe(0);
    expect((await statuses(ids)).map((row) => row.status)).toEqual(ids.map(() => "completed"));
    for (const id of ids) expect(await eventsOf(id)).toEqual(["queued", "assigned", "streaming", "completed"]);
    expect(logs.some((line) => line.msg === "task records written again: the database is back")).toBe(true);
  });

  it("writes a batch whose reply was lost after it committed exactly once", async () => {
    const journal = await connectThroughProxy();
    const id = randomUUID();
    journal.created({ id, difficulty: "SIMPLE" });
    journal.update(id, "streaming", { node_id: nodeId, first_token_at: new Date() }, nodeId);
    await journal.flush();

    const lost = proxy.loseNextReply(id);
    journal.update(id, "completed", { completion_tokens: 7, completed_at: new Date(), total_ms: 70 }, nodeId);
    journal.note(id, "completed", nodeId, "spot check passed");
    await journal.flush();
    await lost;
    expect(proxy.lostReplies).toBe(1);
    expect(await eventsOf(id)).toEqual(["queued", "streaming", "completed", "completed"]);
    expect((await statuses([id]))[0]!.status).toBe("completed");
    expect(logs.some((line) => line.level >= 50)).toBe(false);
  });

  it("writes a batch whose reply was lost once, though the first check of its mark failed otherwise", async () => {
    // the check writes the mark again in a transaction it rolls back (ON CONFLICT DO NOTHING): the first such
    // insert is refused by a trigger, as a lock or statement timeout would refuse it
    await sql`CREATE SEQUENCE probe_refusals`.execute(test.db);
    await sql`CREATE FUNCTION refuse_first_probe() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF current_query() LIKE '%ON CONFLICT DO NOTHING%' THEN
          IF nextval('probe_refusals') = 1 THEN RAISE EXCEPTION 'the probe is refused this once'; END IF;
        END IF;
        RETURN NEW;
      END $$`.execute(test.db);
    await sql`CREATE TRIGGER refuse_first_probe BEFORE INSERT ON journal_batches
      FOR EACH ROW EXECUTE FUNCTION refuse_first_probe()`.execute(test.db);
    try {
      const journal = await connectThroughProxy();
      const id = randomUUID();
      journal.created({ id, difficulty: "SIMPLE" });
      await journal.flush();
      const lost = proxy.loseNextReply(id);
      journal.update(id, "completed", { completion_tokens: 7, completed_at: new Date(), total_ms: 70 }, nodeId);
      await journal.flush();
      await lost;
      expect(proxy.lostReplies).toBe(1);
      const { rows } = await sql<{ n: string }>`SELECT last_value AS n FROM probe_refusals`.execute(test.db);
      expect(Number(rows[0]!.n)).toBe(2); // refused once, then asked again: the batch had landed
      expect(await eventsOf(id)).toEqual(["queued", "completed"]);
      expect(logs.some((line) => line.msg.includes("waiting for the database"))).toBe(true);
      expect(logs.some((line) => line.level >= 50)).toBe(false);
    } finally {
      await sql`DROP TRIGGER refuse_first_probe ON journal_batches`.execute(test.db);
      await sql`DROP FUNCTION refuse_first_probe(); DROP SEQUENCE probe_refusals`.execute(test.db);
    }
  });

  it("stops admitting new tasks at the cap of waiting records, and admits again once they are written", async () => {
    proxy = await startDatabaseProxy(test.url);
    through = await openDatabase({ url: proxy.url, poolSize: 2, dataDir: "", logger });
    const journal = new TaskJournal(through.db, logger, { flushDelayMs: 5, pacing, maxWaiting: 4 });
    await proxy.cut();
    const ids = [randomUUID(), randomUUID()];
    for (const id of ids) journal.created({ id, difficulty: "SIMPLE" });
    expect(journal.admitting).toBe(true);
    for (const id of ids)
      journal.update(id, "failed", { failure_reason: "client went away", completed_at: new Date() }, null);
    expect(journal.admitting).toBe(false);
    const written = journal.flush();
    await sleep(300);
    await proxy.restore();
    await written;
    expect(journal.admitting).toBe(true);
    expect((await statuses(ids)).map((row) => row.status)).toEqual(["failed", "failed"]);
  });
});
