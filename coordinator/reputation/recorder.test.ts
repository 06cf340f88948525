// The reputation recorder against a real database: outcomes that arrive together are written in one batch; one
// that cannot be written (an unknown node) does not cost the others theirs, no completion is judged twice, and an
// outcome waits out a database outage (or a lost COMMIT reply) and then counts exactly once.
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDatabaseProxy } from "../../test/support/database-proxy.ts";
import { createTestDatabase, databaseSource, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { openDatabase } from "../db/connect.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { TaskJournal } from "../tasks/journal.ts";
import { eventsOf, insertNode, insertTask, reputationOf } from "../../test/support/node-rows.ts";
import type { TaskOutcomeInput } from "./ledger.ts";
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

  it("writes a batch in order, and writes the rest one by one when one outcome cannot be written", async () => {
    const logged: string[] = [];
    const logger = pino({ level: "error" }, { write: (line: string) => logged.push(line) });
    const tracker = new FastCompletionTracker();
    const recorder = new ReputationRecorder(
      test.db,
      new TaskJournal(test.db, logger),
      tracker,
      new NodeRegistry(),
      logger,
    );
    const node = await insertNode(test.db);
    const tasks = [await insertTask(test.db, node), await insertTask(test.db, node)];
    const outcome = (taskId: string, nodeId = node.id): TaskOutcomeInput => ({
      nodeId,
      accountId: node.accountId,
      taskId,
      difficulty: "SIMPLE",
      tier: "MID",
      outcome: "completed",
      completionTokens: 80,
      generationMs: 4_000,
    });
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
});

describe.skipIf(databaseSource().kind !== "postgres")("reputation recorder through a database outage", () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase();
  });
  afterAll(async () => {
    await test?.close();
  });

  it("keeps an outcome through an outage and a lost COMMIT reply, and applies each exactly once", async () => {
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const proxy = await startDatabaseProxy(test.url);
    const through = await openDatabase({ url: proxy.url, poolSize: 2, dataDir: "", logger });
    try {
      const pacing = { firstMs: 50, maxMs: 200, logEveryMs: 60_000 };
      const recorder = new ReputationRecorder(
        through.db,
        new TaskJournal(through.db, logger, { pacing }),
        new FastCompletionTracker(),
        new NodeRegistry(),
        logger,
        pacing,
      );
      const node = await insertNode(test.db);
      const tasks = [await insertTask(test.db, node), await insertTask(test.db, node)];
      const outcome = (taskId: string): TaskOutcomeInput => ({
        nodeId: node.id,
        accountId: node.accountId,
        taskId,
        difficulty: "SIMPLE",
        tier: "MID",
        outcome: "completed",
        completionTokens: 80,
        generationMs: 4_000,
      });

      await proxy.cut();
      recorder.record(outcome(tasks[0]!));
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(recorder.waiting).toBe(1);
      expect(lines.some((line) => line.msg === "reputation outcomes waiting for the database")).toBe(true);
      await proxy.restore();
      await recorder.settled();
      expect(await reputationOf(test.db, node.id)).toBe(110);

      const lost = proxy.loseNextCommitReply();
      recorder.record(outcome(tasks[1]!));
      await recorder.settled();
      await lost;
      expect(proxy.lostCommitReplies).toBe(1);
      // the retried batch found its events already written: +10 once, not twice
      expect(await reputationOf(test.db, node.id)).toBe(120);
      expect((await eventsOf(test.db, node.id)).filter((e) => e.rule === "task_completed")).toHaveLength(2);
      expect(lines.some((line) => line.level >= 50)).toBe(false);
    } finally {
      await through.close();
      await proxy.close();
    }
  });
});
