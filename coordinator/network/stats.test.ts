// The network's figures: the request totals are one count shared by every caller, read again no sooner than the age
// a caller asks for, nor than twenty times what the last count took (GetStats is public; the table only grows).
import type { KyselyPlugin } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/support/database.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { NetworkStatsSampler } from "./stats.ts";

describe("network stats sampler", () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase();
  });
  afterAll(() => test?.close());

  it("reads the totals again after the age asked for, or after twenty times the last count's duration", async () => {
    let clock = 1_000_000;
    let counts = 0;
    /** How long each count seems to take: the plugin moves the clock while the query runs. */
    let countTakesMs = 100;
    const slow: KyselyPlugin = {
      transformQuery: (args) => args.node,
      transformResult: async (args) => {
        counts++;
        clock += countTakesMs;
        return args.result;
      },
    };
    const sampler = new NetworkStatsSampler({
      db: test.db.withPlugin(slow),
      registry: new NodeRegistry(),
      orchestrator: { queueLength: 0 },
      now: () => clock,
    });
    const completed = () => test.db.insertInto("tasks").values({ difficulty: "SIMPLE", status: "completed" }).execute();

    expect((await sampler.sample(250)).tasksCompleted).toBe(0n);
    expect(counts).toBe(1);
    await completed();
    // the count took 100 ms: not again for 2 s, though the caller asks for 250 ms
    clock += 1_500;
    expect((await sampler.sample(250)).tasksCompleted).toBe(0n);
    expect(counts).toBe(1);
    clock += 500; // 2 s after that count began
    expect((await sampler.sample(250)).tasksCompleted).toBe(1n);
    expect(counts).toBe(2);

    // a quick count: the age the caller asks for rules again
    countTakesMs = 0;
    clock += 2_100;
    await sampler.sample(250);
    expect(counts).toBe(3);
    await completed();
    clock += 249;
    expect((await sampler.sample(250)).tasksCompleted).toBe(1n);
    clock += 1;
    expect((await sampler.sample(250)).tasksCompleted).toBe(2n);
    expect(counts).toBe(4);
  });
});
