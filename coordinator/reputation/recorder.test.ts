// The reputation recorder against a real database: outcomes that arrive together are written in one batch; one
// that cannot be written (an unknown node) does not cost the others theirs, and no completion is judged twice.
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { TaskJournal } from "../tasks/journal.ts";
import { insertNode, insertTask, reputationOf } from "./fixtures.ts";
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
    const recorder = new ReputationRecorder(test.db, new TaskJournal(test.db, logger), tracker, new NodeRegistry(), logger);
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
    expect(logged.some((line) => line.includes("no-such-node") && line.includes("could not apply a reputation rule"))).toBe(true);
    // each of the three completions was judged for speed once, though the batch was written twice
    expect(tracker.size("SIMPLE", "MID", "tokens_per_second")).toBe(3);
  });
});
