// The task journal on both engines: batched inserts that already carry their changes, and updates grouped by the
// columns they set (jsonb_to_recordset), with every value landing in its column.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { insertNode } from "../../test/support/node-rows.ts";
import { TaskJournal } from "./journal.ts";
import { TASK_COLUMNS } from "./journal-batch.ts";

describe.each(testEngines())("task journal on $name", ({ engine }) => {
  let test: TestDatabase;
  let nodeId: string;
  beforeAll(async () => {
    test = await createTestDatabase({ engine });
    nodeId = (await insertNode(test.db)).id;
  });
  afterAll(async () => {
    await test?.close();
  });

  // a failed write is logged, not thrown: the test fails loudly on it instead
  const logger = pino({ level: "error" }, { write: (line: string) => expect.unreachable(line) });
  const row = (id: string) => test.db.selectFrom("tasks").selectAll().where("id", "=", id).executeTakeFirstOrThrow();

  it("knows every column of tasks, with its SQL type (a batch's rows are typed by this list)", async () => {
    const { rows } = await sql<{ column_name: string; data_type: string }>`
      SELECT column_name, data_type FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = 'tasks'`.execute(test.db);
    const short: Record<string, string> = { "timestamp with time zone": "timestamptz" };
    const schema = Object.fromEntries(rows.map((r) => [r.column_name, short[r.data_type] ?? r.data_type]));
    expect(Object.keys(schema).length).toBeGreaterThan(20);
    expect({ ...TASK_COLUMNS }).toEqual(schema);
  });

  it("writes each batch as one statement with a mark, and keeps only its last batch's mark", async () => {
    const instance = `journal-${randomUUID()}`;
    const journal = new TaskJournal(test.db, logger, { flushDelayMs: 60_000, instance });
    // the marks this journal's instance left (recovery deletes them when it stops: tasks/recovery.ts)
    const marks = async () =>
      (await test.db.selectFrom("journal_batches").select("id").where("instance", "=", instance).execute())
        .map((mark) => mark.id)
        .sort();
    const before = await marks();
    expect(before).toEqual([]);
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const seen: string[][] = [];
    for (const id of ids) {
      journal.created({ id, difficulty: "SIMPLE" });
      journal.update(id, "failed", { failure_reason: "client went away", completed_at: new Date() }, null);
      await journal.flush();
      seen.push(await marks());
    }
    // one new mark after each batch, a different one each time: the previous batch's is gone with the next
    for (const after of seen) expect(after).toHaveLength(1);
    expect(new Set(seen.map((after) => after.join())).size).toBe(3);
    expect((await Promise.all(ids.map(row))).map((task) => task.status)).toEqual(["failed", "failed", "failed"]);
  });

  it("tells `landed` the earliest end of each written batch that ended tasks, after it is written", async () => {
    const told: { end: Date; stored: Promise<string[]> }[] = [];
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const stored = async () =>
      (await test.db.selectFrom("tasks").select("id").where("id", "in", ids).execute()).map((task) => task.id).sort();
    const journal = new TaskJournal(test.db, logger, {
      flushDelayMs: 60_000,
      landed: (end) => told.push({ end, stored: stored() }),
    });
    const [early, late] = [new Date("2026-12-05T10:00:00Z"), new Date("2026-12-05T10:00:07Z")];
    journal.created({ id: ids[0]!, difficulty: "SIMPLE" });
    journal.update(ids[0]!, "completed", { completed_at: late, completion_tokens: 3 }, nodeId);
    journal.created({ id: ids[1]!, difficulty: "SIMPLE" });
    journal.update(ids[1]!, "failed", { completed_at: early, failure_reason: "timed out" }, nodeId);
    await journal.flush();
    journal.created({ id: ids[2]!, difficulty: "SIMPLE" }); // a batch that ends nothing tells nothing
    await journal.flush();
    expect(told.map((call) => call.end)).toEqual([early]);
    expect(await told[0]!.stored).toEqual([ids[0]!, ids[1]!].sort());
  });

  it("writes an ended task within endFlushMs, with the tasks that ended meanwhile; at once with 0", async () => {
    const exists = async (id: string) =>
      (await test.db.selectFrom("tasks").select("id").where("id", "=", id).executeTakeFirst()) !== undefined;
    const end = (journal: TaskJournal, id: string) => {
      journal.created({ id, difficulty: "SIMPLE" });
      journal.update(id, "completed", { completion_tokens: 1, completed_at: new Date() }, null);
    };
    const gathering = new TaskJournal(test.db, logger, { flushDelayMs: 60_000, endFlushMs: 1_000 });
    const [first, second] = [randomUUID(), randomUUID()];
    end(gathering, first);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await exists(first)).toBe(false); // still gathering
    end(gathering, second);
    await expect.poll(() => exists(first), { timeout: 5_000 }).toBe(true);
    expect(await exists(second)).toBe(true); // the same statement: both or neither
    const atOnce = new TaskJournal(test.db, logger, { flushDelayMs: 60_000, endFlushMs: 0 });
    const third = randomUUID();
    end(atOnce, third);
    await expect.poll(() => exists(third), { timeout: 5_000 }).toBe(true); // not after the 60 s delay
  });

  it("writes a task created and finished within one batch as one insert with its final state", async () => {
    const journal = new TaskJournal(test.db, logger, { flushDelayMs: 60_000 });
    const id = randomUUID();
    const assignedAt = new Date("2026-12-05T10:00:00.123Z");
    journal.created({ id, difficulty: "SIMPLE", division_mode: "single", classifier: "local", max_tokens: 64 });
    journal.update(id, "assigned", { node_id: nodeId, tier: "MID", attempt: 1, assigned_at: assignedAt }, nodeId);
    journal.update(
      id,
      "completed",
      { prompt_tokens: 12, completion_tokens: 34, completed_at: new Date("2026-12-05T10:00:01Z"), total_ms: 877 },
      nodeId,
    );
    await journal.flush();
    expect(await row(id)).toMatchObject({
      status: "completed",
      node_id: nodeId,
      tier: "MID",
      attempt: 1,
      assigned_at: assignedAt,
      prompt_tokens: 12,
      completion_tokens: 34,
      total_ms: 877,
      max_tokens: 64,
    });
    const events = await test.db
      .selectFrom("task_events")
      .select("status")
      .where("task_id", "=", id)
      .orderBy("id")
      .execute();
    expect(events.map((e) => e.status)).toEqual(["queued", "assigned", "completed"]);
  });

  it(
    "updates tasks of earlier batches together by column set, each with its own values (nulls and failures " + "too)",
    async () => {
      const journal = new TaskJournal(test.db, logger, { flushDelayMs: 60_000 });
      const ids = Array.from({ length: 5 }, () => randomUUID());
      for (const id of ids) journal.created({ id, difficulty: "COMPLEX" });
      await journal.flush();
      for (const [i, id] of ids.entries()) {
        journal.update(id, "streaming", { first_token_at: new Date(1_765_000_000_000 + i), ttft_ms: 10 + i }, nodeId);
      }
      journal.update(ids[4]!, "failed", { failure_reason: "node journal-node disconnected", completed_at: null }, null);
      await journal.flush();
      for (const [i, id] of ids.entries()) {
        expect(await row(id)).toMatchObject({ ttft_ms: 10 + i, first_token_at: new Date(1_765_000_000_000 + i) });
      }
      expect((await row(ids[0]!)).status).toBe("streaming");
      expect(await row(ids[4]!)).toMatchObject({
        status: "failed",
        failure_reason: "node journal-node disconnected",
        completed_at: null,
      });
    },
  );

  it(
    "writes tasks that set different columns in one batch, defaults where a task set none, parent and part " +
      "together",
    async () => {
      const journal = new TaskJournal(test.db, logger, { flushDelayMs: 60_000 });
      const [parent, part, bare] = [randomUUID(), randomUUID(), randomUUID()];
      journal.created({ id: parent, difficulty: "ADVANCED", division_mode: "subtasks", max_tokens: 500 });
      journal.created({ id: part, parent_id: parent, difficulty: "SIMPLE", classifier: "node" });
      journal.created({ id: bare, difficulty: "COMPLEX" });
      journal.update(part, "completed", { prompt_tokens: 3, completion_tokens: 4, completed_at: new Date() }, nodeId);
      journal.note(bare, "queued", null, 'waiting for a node: "quoted", 日本, \\ and a newline\n');
      const before = Date.now();
      await journal.flush();
      expect(await row(parent)).toMatchObject({ division_mode: "subtasks", max_tokens: 500, parent_id: null });
      expect(await row(part)).toMatchObject({ parent_id: parent, status: "completed", completion_tokens: 4 });
      const defaults = await row(bare);
      expect(defaults).toMatchObject({ status: "queued", division_mode: "single", prompt_tokens: 0, attempt: 0 });
      expect(defaults.created_at.getTime()).toBeGreaterThan(before - 60_000);
      const notes = await test.db.selectFrom("task_events").select("detail").where("task_id", "=", bare).execute();
      expect(notes.map((n) => n.detail)).toContain('waiting for a node: "quoted", 日本, \\ and a newline\n');
    },
  );

  it("stores a NUL in a node's words as U+FFFD instead of failing the batch (jsonb refuses U+0000)", async () => {
    const journal = new TaskJournal(test.db, logger, { flushDelayMs: 60_000 });
    const [nul, bystander] = [randomUUID(), randomUUID()];
    journal.created({ id: nul, difficulty: "SIMPLE" });
    journal.created({ id: bystander, difficulty: "SIMPLE" });
    const reason = `node ${nodeId}: INTERNAL: bad\u0000bytes and a backslash-u0000 that is text: \\u0000`;
    journal.update(nul, "failed", { failure_reason: reason, completed_at: new Date() }, nodeId, reason);
    journal.update(bystander, "completed", { completion_tokens: 2, completed_at: new Date() }, nodeId);
    await journal.flush();
    const stored = reason.replace("\u0000", "\ufffd");
    expect(stored).not.toBe(reason);
    expect(await row(nul)).toMatchObject({ status: "failed", failure_reason: stored });
    expect(await row(bystander)).toMatchObject({ status: "completed", completion_tokens: 2 });
    const events = await test.db.selectFrom("task_events").select("detail").where("task_id", "=", nul).execute();
    expect(events.map((e) => e.detail)).toContain(stored);
  });

  it("writes every other task of a batch when the database refuses one task's records, and logs that one", async () => {
    const logged: Record<string, unknown>[] = [];
    const recording = pino({ level: "error" }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    const journal = new TaskJournal(test.db, recording, { flushDelayMs: 60_000 });
    const ids = Array.from({ length: 7 }, () => randomUUID());
    for (const id of ids) journal.created({ id, difficulty: "COMPLEX" });
    const [refused] = ids.slice(4);
    // ttft_ms is an integer column: 2^40 is out of its range, so PostgreSQL refuses this task's row
    for (const [i, id] of ids.entries())
      journal.update(
        id,
        "streaming",
        { ttft_ms: id === refused ? 2 ** 40 : 10 + i, first_token_at: new Date() },
        nodeId,
      );
    expect(journal.waiting).toBe(14);
    await journal.flush();
    expect(journal.waiting).toBe(0);
    const rows = await test.db.selectFrom("tasks").select(["id", "ttft_ms"]).where("id", "in", ids).execute();
    expect(new Map(rows.map((r) => [r.id, r.ttft_ms]))).toEqual(
      new Map(ids.filter((id) => id !== refused).map((id) => [id, 10 + ids.indexOf(id)])),
    );
    expect(logged.map((line) => [line.msg, line.taskId])).toEqual([["task records could not be written", refused]]);
  });
});
