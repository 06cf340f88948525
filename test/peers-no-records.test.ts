// bench/peers-no-records.ts, the peers trace's "Iris without records" target: once it is loaded, a chat request's
// records, made by the very calls the coordinator makes (bench/request-records.ts), reach neither the task journal's
// batches nor the database, so that the target measures Iris with nothing of its records left.
import { randomUUID } from "node:crypto";
import pino from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import "../bench/peers-no-records.ts";
import { RequestRecords } from "../bench/request-records.ts";
import { NodeRegistry } from "../coordinator/nodes/registry.ts";
import { ReputationRecorder } from "../coordinator/reputation/recorder.ts";
import { FastCompletionTracker } from "../coordinator/reputation/rules.ts";
import { TaskJournal } from "../coordinator/tasks/journal.ts";
import { createTestDatabase, type TestDatabase } from "./support/database.ts";
import { type FixtureNode, insertNode } from "./support/node-rows.ts";

let test: TestDatabase;
let node: FixtureNode;
beforeAll(async () => {
  test = await createTestDatabase();
  node = await insertNode(test.db);
});
afterAll(async () => {
  await test?.close();
});

it("keeps no record of a request: no task row, no status event, no reputation outcome", async () => {
  const reputation = async () =>
    (await test.db.selectFrom("nodes").select("reputation").where("id", "=", node.id).executeTakeFirstOrThrow())
      .reputation;
  const before = await reputation();
  const logger = pino({ level: "silent" });
  const journal = new TaskJournal(test.db, logger, { flushDelayMs: 60_000 });
  const recorder = new ReputationRecorder(journal, new FastCompletionTracker(), new NodeRegistry(), logger);
  const records = new RequestRecords(journal, recorder, node);
  const taskIds = [randomUUID(), randomUUID()];
  for (const taskId of taskIds) {
    records.started(taskId);
    records.ended(taskId);
    journal.note(taskId, "streaming", node.id, "re-routed: a note, as a failover writes one");
  }
  // nothing waits to be written, and a flush (as shutdown makes one) writes nothing
  expect([journal.waiting, recorder.waiting]).toEqual([0, 0]);
  await journal.flush();
  await recorder.settled();
  const count = async (table: "tasks" | "task_events" | "reputation_events", column: "id" | "task_id") =>
    (await test.db.selectFrom(table).select(column).where(column, "in", taskIds).execute()).length;
  expect(await count("tasks", "id")).toBe(0);
  expect(await count("task_events", "task_id")).toBe(0);
  expect(await count("reputation_events", "task_id")).toBe(0);
  expect(await reputation()).toBe(before);
});
