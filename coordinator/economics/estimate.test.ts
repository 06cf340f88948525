// The month-to-date earnings estimate: the payout formula over this month's work so far, recomputed at most every
// refreshMs and never on the caller's path.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { ESTIMATE_SETTLE_MS, EarningsEstimator } from "./estimate.ts";
import { monthRange } from "./months.ts";
import { monthContributions, splitPool } from "./payouts.ts";

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

  const reputationEvent = async (nodeId: string, delta: number, at: Date) => {
    const node = await test.db
      .selectFrom("nodes")
      .select(["reputation", "account_id"])
      .where("id", "=", nodeId)
      .executeTakeFirstOrThrow();
    await test.db
      .insertInto("reputation_events")
      .values({ node_id: nodeId, account_id: node.account_id, rule: "admin", delta, created_at: at })
      .execute();
    await test.db
      .updateTable("nodes")
      .set({ reputation: node.reputation + delta })
      .where("id", "=", nodeId)
      .execute();
  };
  /** The estimate the whole month's records give, counted up to `until`: what every refresh must agree with. */
  const whole = async (month: string, until: number) => {
    const shares = splitPool(1_000, await monthContributions(test.db, monthRange(month).start, new Date(until)));
    return new Map(shares.map((share) => [share.accountId, share.amount]));
  };
  const silent = pino({ level: "silent" });

  it("splits the pool by the month's work up to a minute ago; recomputes only when older than refreshMs", async () => {
    let clock = Date.parse("2026-12-10T12:00:00Z");
    const estimator = new EarningsEstimator(test.db, 1_000, 60_000, silent, () => clock);
    expect(estimator.forAccount(accounts[0]!)).toBeUndefined(); // the first call starts the computation
    await estimator.refresh();
    expect(estimator.forAccount(accounts[0]!)).toEqual({ month: "2026-12", units: 0 });

    await completed("earner-0", 300, new Date("2026-12-10T12:00:05Z"));
    await completed("earner-1", 100, new Date("2026-12-10T12:00:10Z"));
    await completed("earner-1", 5_000, new Date("2026-11-30T23:59:00Z")); // last month: not this month's work
    clock += 30_000;
    // still the figure of 30 s ago
    expect(estimator.forAccount(accounts[0]!)).toEqual({ month: "2026-12", units: 0 });
    clock += 30_000; // 12:01:00: stale, but the work of 12:00:05 is not a minute old yet
    estimator.forAccount(accounts[0]!); // a refresh starts, the caller does not wait for it
    await estimator.refresh();
    expect(estimator.forAccount(accounts[0]!)).toEqual({ month: "2026-12", units: 0 });
    clock += 60_000;
    await estimator.refresh();
    expect(estimator.forAccount(accounts[0]!)).toEqual({ month: "2026-12", units: 750 });
    expect(estimator.forAccount(accounts[1]!)).toEqual({ month: "2026-12", units: 250 });
    expect(estimator.forAccount(randomUUID())).toEqual({ month: "2026-12", units: 0 });
  });

  it("reads only what ended since its last refresh, a day at a time, and agrees with the whole month", async () => {
    // across midnight, with scores that move between the tasks (each task weighs its node's score when it ended)
    let clock = Date.parse("2027-01-10T23:56:00Z");
    const estimator = new EarningsEstimator(test.db, 1_000, 60_000, silent, () => clock);
    await completed("earner-0", 200, new Date("2027-01-02T08:00:00Z")); // read by the first refresh, days back
    for (let round = 0; round < 6; round++) {
      await completed(`earner-${round % 2}`, 100 + 37 * round, new Date(clock - 20_000));
      await reputationEvent(`earner-${(round + 1) % 2}`, round % 3 === 0 ? -40 : 25, new Date(clock - 10_000));
      clock += 60_000;
      await estimator.refresh();
      const expected = await whole("2027-01", clock - ESTIMATE_SETTLE_MS);
      for (const account of accounts) {
        expect(estimator.forAccount(account)!.units).toBe(expected.get(account) ?? 0);
      }
    }
    expect(new Date(clock).toISOString()).toBe("2027-01-11T00:02:00.000Z"); // the rounds crossed midnight
    const units = accounts.map((account) => estimator.forAccount(account)!.units);
    expect(units[0]! + units[1]!).toBe(1_000);
    expect(units[0]).toBeGreaterThan(0);
    expect(units[1]).toBeGreaterThan(0);

    // a record written late (after an outage) for work it had counted past: not read again until told
    await completed("earner-1", 2_000, new Date("2027-01-10T23:57:00Z"));
    clock += 60_000;
    await estimator.refresh();
    expect(accounts.map((account) => estimator.forAccount(account)!.units)).toEqual(units);
    estimator.landed(new Date("2027-01-10T23:57:00Z"));
    clock += 60_000;
    await estimator.refresh();
    const expected = await whole("2027-01", clock - ESTIMATE_SETTLE_MS);
    expect(estimator.forAccount(accounts[1]!)!.units).toBe(expected.get(accounts[1]!));
    expect(estimator.forAccount(accounts[1]!)!.units).toBeGreaterThan(units[1]!);
    // work that ends now is never behind what was counted: nothing is read again for it
    estimator.landed(new Date(clock));
    await completed("earner-0", 1, new Date("2027-01-03T00:00:00Z")); // late, and not told: stays out
    clock += 60_000;
    await estimator.refresh();
    expect(estimator.forAccount(accounts[1]!)!.units).toBe(expected.get(accounts[1]!));
  });
});
