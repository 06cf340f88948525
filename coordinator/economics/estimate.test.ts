// The month-to-date earnings estimate: the payout formula over this month's work so far, recomputed at most every
// refreshMs and never on the caller's path.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { EarningsEstimator } from "./estimate.ts";

describe.each(testEngines())("earnings estimate on $name", ({ engine }) => {
  let test: TestDatabase;
  const accounts = [randomUUID(), randomUUID()];
  beforeAll(async () => {
    test = await createTestDatabase({ engine });
    for (const [i, id] of accounts.entries()) {
      await test.db
        .insertInto("accounts")
        .values({ id, key_hash: createHash("sha256").update(randomBytes(16)).digest("hex") })
        .execute();
      await test.db
        .insertInto("nodes")
        .values({
          id: `earner-${i}`,
          account_id: id,
          tier: "MID",
          model_name: "m",
          parameter_count: 8e9,
          tokens_per_second: 20,
          agent_version: "t",
          reputation: 100,
        })
        .execute();
    }
  });
  afterAll(async () => {
    await test?.close();
  });

  const completed = (nodeId: string, tokens: number, at: Date) =>
    test.db
      .insertInto("tasks")
      .values({
        status: "completed",
        difficulty: "SIMPLE",
        node_id: nodeId,
        completion_tokens: tokens,
        created_at: at,
        completed_at: at,
      })
      .execute();

  it(
    "splits the pool by the month's work so far, and recomputes only when the figure is older than " + "refreshMs",
    async () => {
      let clock = Date.parse("2026-12-10T12:00:00Z");
      const estimator = new EarningsEstimator(test.db, 1_000, 60_000, pino({ level: "silent" }), () => clock);
      expect(estimator.forAccount(accounts[0]!)).toBeUndefined(); // the first call starts the computation
      await estimator.refresh();
      expect(estimator.forAccount(accounts[0]!)).toEqual({ month: "2026-12", units: 0 });

      await completed("earner-0", 300, new Date("2026-12-10T11:00:00Z"));
      await completed("earner-1", 100, new Date("2026-12-10T11:30:00Z"));
      await completed("earner-1", 5_000, new Date("2026-11-30T23:59:00Z")); // last month: not this month's work
      clock += 30_000;
      // still the figure of 30 s ago
      expect(estimator.forAccount(accounts[0]!)).toEqual({ month: "2026-12", units: 0 });
      clock += 30_000;
      estimator.forAccount(accounts[0]!); // stale now: a refresh starts, the caller does not wait for it
      await estimator.refresh();
      expect(estimator.forAccount(accounts[0]!)).toEqual({ month: "2026-12", units: 750 });
      expect(estimator.forAccount(accounts[1]!)).toEqual({ month: "2026-12", units: 250 });
      expect(estimator.forAccount(randomUUID())).toEqual({ month: "2026-12", units: 0 });
    },
  );
});
