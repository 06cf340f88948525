// The monthly distribution on a real database: the formula, UTC months, idempotence, concurrency, the scheduler.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { Kysely } from "kysely";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/support/database.ts";
import type { Database, ReputationRule, TaskStatus } from "../db/schema.ts";
import { distributeMonth, listPayouts, monthContributions } from "./payouts.ts";
import { startMonthlyPayouts } from "./scheduler.ts";

const at = (iso: string) => new Date(iso);
const keyHash = () => createHash("sha256").update(randomBytes(16)).digest("hex");

async function account(db: Kysely<Database>, id: string = randomUUID()): Promise<string> {
  await db.insertInto("accounts").values({ id, key_hash: keyHash() }).execute();
  return id;
}

async function node(db: Kysely<Database>, accountId: string, reputation = 100): Promise<string> {
  const id = `node-${randomBytes(4).toString("hex")}`;
  await db
    .insertInto("nodes")
    .values({
      id,
      account_id: accountId,
      tier: "MID",
      model_name: "m",
      parameter_count: 8e9,
      tokens_per_second: 20,
      agent_version: "t",
      reputation,
    })
    .execute();
  return id;
}

async function task(
  db: Kysely<Database>,
  values: { nodeId: string | null; tokens: number; completedAt: string; status?: TaskStatus; parentId?: string },
): Promise<string> {
  const status = values.status ?? "completed";
  const row = await db
    .insertInto("tasks")
    .values({
      status,
      difficulty: "SIMPLE",
      node_id: values.nodeId,
      parent_id: values.parentId ?? null,
      completion_tokens: values.tokens,
      created_at: new Date(Date.parse(values.completedAt) - 5_000),
      completed_at: at(values.completedAt),
      failure_reason: status === "failed" ? "node timed out" : null,
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  return row.id;
}

async function event(
  db: Kysely<Database>,
  values: { nodeId: string; accountId: string; delta: number; at: string; rule?: ReputationRule; taskId?: string },
): Promise<void> {
  await db
    .insertInto("reputation_events")
    .values({
      node_id: values.nodeId,
      account_id: values.accountId,
      rule: values.rule ?? "admin",
      delta: values.delta,
      task_id: values.taskId ?? null,
      created_at: at(values.at),
    })
    .execute();
}

const silent = pino({ level: "silent" });

describe("monthly payouts", () => {
  let test: TestDatabase;
  let db: Kysely<Database>;
  beforeAll(async () => {
    test = await createTestDatabase();
    db = test.db;
  });
  afterAll(() => test?.close());

  // Each test uses its own months: the database is shared within this file.

  it("pays tokens × reputation / 100 in exact integer units (hand-computed, three accounts)", async () => {
    const a = await account(db, "00000000-0000-4000-8000-00000000000a");
    const b = await account(db, "00000000-0000-4000-8000-00000000000b");
    const c = await account(db, "00000000-0000-4000-8000-00000000000c");
    const [na, nb, nc] = [await node(db, a, 100), await node(db, b, 200), await node(db, c, 10)];
    await task(db, { nodeId: na, tokens: 600, completedAt: "2030-03-02T10:00:00Z" });
    await task(db, { nodeId: na, tokens: 400, completedAt: "2030-03-20T10:00:00Z" });
    await task(db, { nodeId: nb, tokens: 500, completedAt: "2030-03-05T10:00:00Z" });
    // a part of a divided task counts as the node's work too
    const parent = await task(db, { nodeId: null, tokens: 0, completedAt: "2030-03-07T10:00:00Z" });
    await task(db, { nodeId: nb, tokens: 300, completedAt: "2030-03-07T10:00:00Z", parentId: parent });
    await task(db, { nodeId: nc, tokens: 4000, completedAt: "2030-03-09T10:00:00Z" });

    const result = await distributeMonth(db, { month: "2030-03", pool: 1000, now: at("2030-04-01T00:00:00Z") });

    // contributions 1000 × 1.0, 800 × 2.0, 4000 × 0.1 = 1000, 1600, 400 of 3000; quotas 333.3, 533.3, 133.3:
    // one unit left, equal remainders, so it goes to the smallest account id (a)
    expect(result).toEqual({
      created: true,
      payouts: [
        { accountId: a, contribution: 1000, amount: 334, share: 1000 / 3000 },
        { accountId: b, contribution: 1600, amount: 533, share: 1600 / 3000 },
        { accountId: c, contribution: 400, amount: 133, share: 400 / 3000 },
      ],
    });
    const run = await db.selectFrom("payout_runs").selectAll().where("month", "=", "2030-03").executeTakeFirstOrThrow();
    expect([run.pool, Number(run.total_contribution)]).toEqual([1000, 3000]);
  });

  it("weights each task by the reputation its node had when the task completed", async () => {
    const owner = await account(db);
    const other = await account(db);
    // reputation: 100 until 15 Jan, 150 until 25 Jan 12:00, 160 until 5 Feb, 120 now
    const n = await node(db, owner, 120);
    const steady = await node(db, other, 100);
    await task(db, { nodeId: n, tokens: 100, completedAt: "2031-01-10T00:00:00Z" }); // × 1.0 = 100
    await task(db, { nodeId: n, tokens: 200, completedAt: "2031-01-20T00:00:00Z" }); // × 1.5 = 300
    const last = await task(db, { nodeId: n, tokens: 100, completedAt: "2031-01-25T12:00:00Z" }); // × 1.6 = 160
    await event(db, { nodeId: n, accountId: owner, delta: 50, at: "2031-01-15T00:00:00Z" });
    // at the same instant as the task: counts as before it
    await event(db, {
      nodeId: n,
      accountId: owner,
      delta: 10,
      at: "2031-01-25T12:00:00Z",
      rule: "task_completed",
      taskId: last,
    });
    await event(db, { nodeId: n, accountId: owner, delta: -40, at: "2031-02-05T00:00:00Z" });
    await task(db, { nodeId: steady, tokens: 560, completedAt: "2031-01-11T00:00:00Z" });

    const { payouts } = await distributeMonth(db, { month: "2031-01", pool: 11, now: at("2031-03-01T00:00:00Z") });

    const byAccount = Object.fromEntries(payouts.map((p) => [p.accountId, [p.contribution, p.amount]]));
    const [low, high] = [owner, other].sort();
    // equal contributions of 560 each: 5.5 units each, the odd unit to the smaller id
    expect(byAccount).toEqual({ [low!]: [560, 6], [high!]: [560, 5] });
  });

  it("credits the account that owned the node when it did the work", async () => {
    const before = await account(db);
    const after = await account(db);
    const n = await node(db, after, 100); // relinked to `after` since
    const done = await task(db, { nodeId: n, tokens: 1000, completedAt: "2032-05-10T00:00:00Z" });
    await event(db, {
      nodeId: n,
      accountId: before,
      delta: 0,
      at: "2032-05-10T00:00:01Z",
      rule: "task_completed",
      taskId: done,
    });
    await task(db, { nodeId: n, tokens: 500, completedAt: "2032-05-20T00:00:00Z" }); // no event: current owner

    const contributions = await monthContributions(db, at("2032-05-01T00:00:00Z"), at("2032-06-01T00:00:00Z"));

    expect(Object.fromEntries(contributions.map((c) => [c.accountId, c.contribution]))).toEqual({
      [before]: 1000,
      [after]: 500,
    });
  });

  it("counts a task in the UTC month its completion falls in", async () => {
    const a = await account(db);
    const n = await node(db, a, 100);
    await task(db, { nodeId: n, tokens: 1, completedAt: "2033-06-30T23:59:59.999Z" });
    await task(db, { nodeId: n, tokens: 10, completedAt: "2033-07-01T00:00:00.000Z" });
    await task(db, { nodeId: n, tokens: 100, completedAt: "2033-07-31T23:59:59.999Z" });
    await task(db, { nodeId: n, tokens: 1000, completedAt: "2033-08-01T00:00:00.000Z" });
    // local midnight in UTC-2 is 02:00 UTC on 1 August: August, not July
    await task(db, { nodeId: n, tokens: 10000, completedAt: "2033-07-31T23:30:00-02:00" });

    const { payouts } = await distributeMonth(db, { month: "2033-07", pool: 100, now: at("2033-08-01T00:00:00Z") });

    expect(payouts.map((p) => [p.contribution, p.amount])).toEqual([[110, 100]]);
  });

  it("ignores failed, cancelled and unfinished tasks, tasks without a node and zero-token answers", async () => {
    const paid = await account(db);
    const unpaid = await account(db);
    const good = await node(db, paid, 100);
    const bad = await node(db, unpaid, 100);
    await task(db, { nodeId: good, tokens: 50, completedAt: "2034-02-10T00:00:00Z" });
    for (const status of ["failed", "cancelled", "streaming", "assigned"] as const) {
      await task(db, { nodeId: bad, tokens: 999, completedAt: "2034-02-11T00:00:00Z", status });
    }
    await task(db, { nodeId: bad, tokens: 0, completedAt: "2034-02-12T00:00:00Z" });
    await task(db, { nodeId: null, tokens: 999, completedAt: "2034-02-12T00:00:00Z" });

    const { payouts } = await distributeMonth(db, { month: "2034-02", pool: 77, now: at("2034-03-01T00:00:00Z") });

    expect(payouts).toEqual([{ accountId: paid, contribution: 50, amount: 77, share: 1 }]);
  });

  it("runs a month once: a re-run returns the stored payouts, whatever changed since", async () => {
    const a = await account(db);
    const b = await account(db);
    const [na, nb] = [await node(db, a, 100), await node(db, b, 300)];
    await task(db, { nodeId: na, tokens: 7, completedAt: "2035-09-03T00:00:00Z" });
    await task(db, { nodeId: nb, tokens: 13, completedAt: "2035-09-04T00:00:00Z" });
    const first = await distributeMonth(db, { month: "2035-09", pool: 1_000_003, now: at("2035-10-02T00:00:00Z") });
    expect(first.created).toBe(true);
    expect(first.payouts.reduce((sum, p) => sum + p.amount, 0)).toBe(1_000_003);

    await task(db, { nodeId: na, tokens: 5000, completedAt: "2035-09-20T00:00:00Z" }); // late arrival
    const again = await distributeMonth(db, { month: "2035-09", pool: 5, now: at("2035-10-03T00:00:00Z") });

    expect(again).toEqual({ created: false, payouts: first.payouts });
    expect(await db.selectFrom("payouts").select("amount").where("month", "=", "2035-09").execute()).toHaveLength(2);
  });

  it("lets exactly one of two concurrent runs create the month; both see the same payouts", async () => {
    const ids = [await account(db), await account(db), await account(db)];
    for (const [i, id] of ids.entries())
      await task(db, {
        nodeId: await node(db, id, 100 + i * 37),
        tokens: 100 + i,
        completedAt: "2036-04-15T00:00:00Z",
      });
    const run = () => distributeMonth(db, { month: "2036-04", pool: 1000, now: at("2036-05-01T00:00:00Z") });

    const results = await Promise.all([run(), run(), run()]);

    expect(results.map((r) => r.created).sort()).toEqual([false, false, true]);
    expect(results[1]!.payouts).toEqual(results[0]!.payouts);
    expect(results[2]!.payouts).toEqual(results[0]!.payouts);
    const stored = await db
      .selectFrom("payouts")
      .select((eb) => eb.fn.sum<string>("amount").as("total"))
      .where("month", "=", "2036-04")
      .executeTakeFirstOrThrow();
    expect(Number(stored.total)).toBe(1000);
  });

  it("closes a month without contributions with an empty run (total 0, no payouts)", async () => {
    const result = await distributeMonth(db, { month: "2037-01", pool: 1000, now: at("2037-02-01T00:00:00Z") });
    expect(result).toEqual({ created: true, payouts: [] });
    const run = await db.selectFrom("payout_runs").selectAll().where("month", "=", "2037-01").executeTakeFirstOrThrow();
    expect([run.pool, Number(run.total_contribution)]).toEqual([1000, 0]);
    expect(await distributeMonth(db, { month: "2037-01", pool: 1000, now: at("2037-03-01T00:00:00Z") })).toEqual({
      created: false,
      payouts: [],
    });
  });

  it("refuses a month that has not ended, a malformed month and a bad pool, writing nothing", async () => {
    await expect(
      distributeMonth(db, { month: "2038-01", pool: 1, now: at("2038-01-31T23:59:59.999Z") }),
    ).rejects.toThrow(/not ended/);
    await expect(distributeMonth(db, { month: "2038-13", pool: 1, now: at("2040-01-01T00:00:00Z") })).rejects.toThrow(
      RangeError,
    );
    await expect(distributeMonth(db, { month: "2038-01", pool: 0.5, now: at("2040-01-01T00:00:00Z") })).rejects.toThrow(
      RangeError,
    );
    expect(await db.selectFrom("payout_runs").select("month").where("month", "=", "2038-01").execute()).toEqual([]);
  });

  it("lists the ledger newest month first, largest amount first, and by month", async () => {
    const a = await account(db);
    const b = await account(db);
    await task(db, { nodeId: await node(db, a), tokens: 10, completedAt: "2039-01-10T00:00:00Z" });
    const nb = await node(db, b);
    await task(db, { nodeId: nb, tokens: 30, completedAt: "2039-01-10T00:00:00Z" });
    await task(db, { nodeId: nb, tokens: 30, completedAt: "2039-02-10T00:00:00Z" });
    await distributeMonth(db, { month: "2039-01", pool: 40, now: at("2039-03-01T00:00:00Z") });
    await distributeMonth(db, { month: "2039-02", pool: 40, now: at("2039-03-01T00:00:00Z") });

    const all = (await listPayouts(db, { limit: 100 })).filter((p) => p.month.startsWith("2039"));
    expect(all.map((p) => [p.month, p.accountId, p.amount])).toEqual([
      ["2039-02", b, 40],
      ["2039-01", b, 30],
      ["2039-01", a, 10],
    ]);
    expect((await listPayouts(db, { month: "2039-02", limit: 100 })).map((p) => p.amount)).toEqual([40]);
    expect(await listPayouts(db, { limit: 1 })).toHaveLength(1);
  });
});

describe("startMonthlyPayouts", () => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase();
  });
  afterAll(() => test?.close());

  it("does nothing before the first completed task, then catches up every finished month once", async () => {
    const { db } = test;
    let now = Date.parse("2026-12-01T00:05:00Z");
    const payouts = startMonthlyPayouts({ db, logger: silent, pool: 500, now: () => now, intervalMs: 3_600_000 });
    try {
      expect(await payouts.catchUp()).toEqual([]);
      const a = await account(db);
      await task(db, { nodeId: await node(db, a), tokens: 10, completedAt: "2026-10-15T00:00:00Z" });
      await task(db, { nodeId: await node(db, a), tokens: 10, completedAt: "2026-11-30T23:00:00Z" });

      // November ended 5 minutes ago: too soon (the task journal may still be writing its last tasks)
      expect(await payouts.catchUp()).toEqual(["2026-10"]);
      now = Date.parse("2027-02-10T00:00:00Z");
      expect(await payouts.catchUp()).toEqual(["2026-11", "2026-12", "2027-01"]);
      expect(await payouts.catchUp()).toEqual([]);

      const runs = await db.selectFrom("payout_runs").select(["month", "pool"]).orderBy("month").execute();
      expect(runs).toEqual(["2026-10", "2026-11", "2026-12", "2027-01"].map((month) => ({ month, pool: 500 })));
      const paid = await db.selectFrom("payouts").select(["month", "amount"]).orderBy("month").execute();
      expect(paid).toEqual([
        { month: "2026-10", amount: 500 },
        { month: "2026-11", amount: 500 },
      ]);
    } finally {
      await payouts.stop();
    }
  });
});
