// The reputation recorder against a real database: outcomes that arrive together are written in one batch; one
// that cannot be written (an unknown node) does not cost the others theirs, no completion is judged twice, and an
// outcome waits out a database outage (or a lost COMMIT reply) and then counts exactly once. An outcome commits in
// the task journal's transaction, with the end of its task.
import { sql } from "kysely";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDatabaseProxy } from "../../test/support/database-proxy.ts";
import { createTestDatabase, databaseSource, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { openDatabase } from "../db/connect.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { TaskJournal } from "../tasks/journal.ts";
import { completionOf, eventsOf, insertNode, insertTask, reputationOf } from "../../test/support/node-rows.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import { ReputationRecorder } from "./recorder.ts";
import { FastCompletionTracker } from "./rules.ts";

describe.each(testEngines())("reputation recorder on $name", ({ engine }) => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase({ engine });
  });
  afterAll(async () => {
    await test?.close();
  });

  /** A journal and its recorder on this database, and the error lines they log. */
  function recording(tracker = new FastCompletionTracker()) {
    const logged: string[] = [];
    const logger = pino({ level: "error" }, { write: (line: string) => logged.push(line) });
    const journal = new TaskJournal(test.db, logger);
    return { logged, journal, recorder: new ReputationRecorder(journal, tracker, new NodeRegistry(), logger) };
  }

  it("writes a batch in order, and writes the rest one by one when one outcome cannot be written", async () => {
    const tracker = new FastCompletionTracker();
    const { logged, recorder } = recording(tracker);
    const node = await insertNode(test.db);
    const tasks = [await insertTask(test.db, node), await insertTask(test.db, node)];
    const outcome = (taskId: string, nodeId = node.id) => completionOf(node, taskId, nodeId);
    // recorded in the same tick: one batch, whose second outcome names a node that does not exist
    recorder.record(outcome(tasks[0]!));
    recorder.record(outcome(tasks[1]!, "no-such-node"));
    recorder.record(outcome(tasks[1]!));
    await recorder.settled();
    expect(await reputationOf(test.db, node.id)).toBe(120);
    expect(
      logged.some((line) => line.includes("no-such-node") && line.includes("could not apply a reputation rule")),
    ).toBe(true);
    // each of the three completions was judged for speed once, though the batch was written twice
    expect(tracker.size("SIMPLE", "MID", "tokens_per_second")).toBe(3);
  });

  it("commits a task's end and its outcome in one transaction; one refused costs only itself", async () => {
    const { logged, journal, recorder } = recording();
    const node = await insertNode(test.db);
    const tasks = [await insertTask(test.db, node), await insertTask(test.db, node), await insertTask(test.db, node)];
    // as the part runner ends a task: the outcome, then the task's end, in one tick
    const end = (taskId: string, nodeId = node.id) => {
      recorder.record(completionOf(node, taskId, nodeId));
      journal.update(taskId, "completed", { completion_tokens: 80 }, node.id);
    };
    const read = async () => {
      // xmin: the transaction that wrote the row version
      const { rows } = await sql<{ id: string; status: string; xmin: string }>`
        SELECT id, status, xmin::text AS xmin FROM tasks WHERE id = ANY(${tasks}::uuid[])`.execute(test.db);
      const { rows: events } = await sql<{ task_id: string; xmin: string }>`
        SELECT task_id, xmin::text AS xmin FROM reputation_events WHERE task_id = ANY(${tasks}::uuid[])`.execute(
        test.db,
      );
      return { task: new Map(rows.map((r) => [r.id, r])), events };
    };
    end(tasks[0]!);
    await recorder.settled();
    const first = await read();
    expect(first.task.get(tasks[0]!)?.status).toBe("completed");
    expect(first.events).toEqual([{ task_id: tasks[0], xmin: first.task.get(tasks[0]!)!.xmin }]);
    // in one batch with an outcome for a node that does not exist: both ends and the good outcome are written
    end(tasks[1]!);
    end(tasks[2]!, "no-such-node");
    await recorder.settled();
    const second = await read();
    expect(tasks.map((id) => second.task.get(id)?.status)).toEqual(["completed", "completed", "completed"]);
    expect(second.events.map((e) => e.task_id).sort()).toEqual([tasks[0], tasks[1]].sort());
    expect(await reputationOf(test.db, node.id)).toBe(120);
    expect(logged.filter((line) => line.includes("could not apply a reputation rule"))).toHaveLength(1);
    expect(logged.some((line) => line.includes("task records could not be written"))).toBe(false);
    expect(recorder.waiting).toBe(0);
  });
  it("lets an outcome ride the next batch when its batch's task records are what the database refuses", async () => {
    const { logged, journal, recorder } = recording();
    const node = await insertNode(test.db);
    const [taskId, bad] = [await insertTask(test.db, node), await insertTask(test.db, node)];
    recorder.record(completionOf(node, taskId));
    journal.update(taskId, "completed", { completion_tokens: 80 }, node.id);
    // ttft_ms is an integer column: 2^40 is out of its range, so the batch fails on the task records, not the outcome
    journal.update(bad, "streaming", { ttft_ms: 2 ** 40 }, node.id);
    await recorder.settled();
    expect(await reputationOf(test.db, node.id)).toBe(110);
    expect((await eventsOf(test.db, node.id)).map((e) => e.task_id)).toEqual([taskId]);
    const row = await test.db.selectFrom("tasks").select("status").where("id", "=", taskId).executeTakeFirst();
    expect(row?.status).toBe("completed");
    expect(logged.filter((line) => line.includes("task records could not be written"))).toHaveLength(1);
    expect(logged.some((line) => line.includes("could not apply a reputation rule"))).toBe(false);
    expect(recorder.waiting).toBe(0);
  });

  it.each([
    { refusals: 2, reputation: 110, givenUp: 0 },
    { refusals: 3, reputation: 100, givenUp: 1 },
  ])("lets an outcome ride at most 3 batches: refused $refusals times, reputation $reputation", async (expected) => {
    const { logged, journal, recorder } = recording();
    const node = await insertNode(test.db);
    const [taskId, bad] = [await insertTask(test.db, node), await insertTask(test.db, node)];
    recorder.record(completionOf(node, taskId));
    journal.update(taskId, "completed", { completion_tokens: 80 }, node.id);
    // the first batch has a record the database refuses, and so has each the outcome rides again, `refusals` in all
    const badRecord = () => journal.update(bad, "streaming", { ttft_ms: 2 ** 40 }, node.id);
    badRecord();
    const ride = journal.ride.bind(journal);
    let refusalsLeft = expected.refusals - 1;
    journal.ride = (item: unknown) => {
      if (refusalsLeft-- > 0) badRecord();
      ride(item);
    };
    await recorder.settled();
    expect(await reputationOf(test.db, node.id)).toBe(expected.reputation);
    expect((await eventsOf(test.db, node.id)).length).toBe(expected.givenUp ? 0 : 1);
    expect(logged.filter((line) => line.includes("task records could not be written"))).toHaveLength(expected.refusals);
    expect(logged.filter((line) => line.includes("could not apply a reputation rule"))).toHaveLength(expected.givenUp);
    expect(recorder.waiting).toBe(0);
  });
});

describe.skipIf(databaseSource().kind !== "postgres")("reputation recorder through a database outage", () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase();
  });
  afterAll(async () => {
    await test?.close();
  });

  it("keeps outcomes through an outage and lost replies of committed batches, each applied once", async () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const proxy = await startDatabaseProxy(test.url);
    const through = await openDatabase({ url: proxy.url, poolSize: 2, dataDir: "", logger });
    try {
      const pacing = { firstMs: 50, maxMs: 200, logEveryMs: 60_000 };
      const journal = new TaskJournal(through.db, logger, { pacing });
      const registry = new NodeRegistry();
      const recorder = new ReputationRecorder(journal, new FastCompletionTracker(), registry, logger);
      const node = await insertNode(test.db);
      const live = testNode(node.id, "MID"); // what routing reads of the node, connected here
      registry.add(live);
      const tasks = [await insertTask(test.db, node), await insertTask(test.db, node)];
      const outcome = (taskId: string) => completionOf(node, taskId);

      await proxy.cut();
      recorder.record(outcome(tasks[0]!));
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(recorder.waiting).toBe(1);
      // the outcome rides the task journal's batch, which waits out the outage
      expect(lines.some((line) => line.msg === "task records waiting for the database")).toBe(true);
      await proxy.restore();
      await recorder.settled();
      expect(await reputationOf(test.db, node.id)).toBe(110);
      expect(live.reputation).toBe(110);

      // with the task's end, one statement: its retry finds the batch's mark written (it committed)
      const lost = proxy.loseNextReply(tasks[1]!);
      recorder.record(outcome(tasks[1]!));
      journal.update(tasks[1]!, "completed", { completion_tokens: 80 }, node.id);
      await recorder.settled();
      await lost;
      expect(proxy.lostReplies).toBe(1);
      const row = await test.db.selectFrom("tasks").select("status").where("id", "=", tasks[1]!).executeTakeFirst();
      expect(row?.status).toBe("completed");
      // +10 once, not twice; the live node hears it though the statement's reply (its new score) was lost
      expect(await reputationOf(test.db, node.id)).toBe(120);
      await expect.poll(() => live.reputation).toBe(120);
      expect((await eventsOf(test.db, node.id)).filter((e) => e.rule === "task_completed")).toHaveLength(2);

      // outcomes of two nodes take a transaction: the journal asks whether the one whose COMMIT reply was lost
      // committed (it did), and does not write it again
      const other = await insertNode(test.db);
      const more = [await insertTask(test.db, node), await insertTask(test.db, other)];
      const lostCommit = proxy.loseNextReply(more[1]!);
      recorder.record(outcome(more[0]!));
      recorder.record(completionOf(other, more[1]!));
      for (const [i, id] of more.entries())
        journal.update(id, "completed", { completion_tokens: 80 }, [node, other][i]!.id);
      await recorder.settled();
      await lostCommit;
      expect(proxy.lostReplies).toBe(2);
      expect([await reputationOf(test.db, node.id), await reputationOf(test.db, other.id)]).toEqual([130, 110]);
      expect((await eventsOf(test.db, other.id)).map((e) => e.rule)).toEqual(["task_completed"]);
      expect(lines.some((line) => line.level >= 50)).toBe(false);
    } finally {
      await through.close();
      await proxy.close();
    }
  });
  it("asks again whether a lost COMMIT landed when the first question fails otherwise; writes it once", async () => {
    // the journal's pg_xact_status resolves to this one (public first on the path), which refuses the first question
    const { name } = (await sql<{ name: string }>`SELECT current_database() AS name`.execute(test.db)).rows[0]!;
    await sql.raw(`ALTER DATABASE "${name}" SET search_path = public, pg_catalog`).execute(test.db);
    await sql`CREATE SEQUENCE status_refusals`.execute(test.db);
    await sql`CREATE FUNCTION public.pg_xact_status(x xid8) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN
        IF nextval('status_refusals') = 1 THEN RAISE EXCEPTION 'the question is refused this once'; END IF;
        RETURN pg_catalog.pg_xact_status(x);
      END $$`.execute(test.db);
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const proxy = await startDatabaseProxy(test.url);
    const through = await openDatabase({ url: proxy.url, poolSize: 2, dataDir: "", logger });
    try {
      const journal = new TaskJournal(through.db, logger, { pacing: { firstMs: 50, maxMs: 200, logEveryMs: 60_000 } });
      const recorder = new ReputationRecorder(journal, new FastCompletionTracker(), new NodeRegistry(), logger);
      // outcomes of two nodes take a transaction, whose COMMIT reply is lost
      const nodes = [await insertNode(test.db), await insertNode(test.db)];
      const tasks = [await insertTask(test.db, nodes[0]!), await insertTask(test.db, nodes[1]!)];
      const lostCommit = proxy.loseNextReply(tasks[1]!);
      for (const [i, taskId] of tasks.entries()) {
        recorder.record(completionOf(nodes[i]!, taskId));
        journal.update(taskId, "completed", { completion_tokens: 80 }, nodes[i]!.id);
      }
      await recorder.settled();
      await lostCommit;
      expect(proxy.lostReplies).toBe(1);
      const asked = await sql<{ n: string }>`SELECT last_value AS n FROM status_refusals`.execute(test.db);
      expect(Number(asked.rows[0]!.n)).toBe(2); // refused once, then asked again: it had committed
      expect([await reputationOf(test.db, nodes[0]!.id), await reputationOf(test.db, nodes[1]!.id)]).toEqual([
        110, 110,
      ]);
      for (const node of nodes) expect(await eventsOf(test.db, node.id)).toHaveLength(1);
      expect(lines.some((line) => line.level >= 50)).toBe(false);
    } finally {
      await through.close();
      await proxy.close();
      await sql`DROP FUNCTION public.pg_xact_status(xid8); DROP SEQUENCE status_refusals`.execute(test.db);
      await sql.raw(`ALTER DATABASE "${name}" RESET search_path`).execute(test.db);
    }
  });
});
