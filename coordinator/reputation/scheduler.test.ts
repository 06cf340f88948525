// The periodic rules against a real database with an injected clock: uptime, broken promises, decay, catch-up,
// concurrency.
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createTestDatabase, type TestDatabase, testEngines } from "../../test/support/database.ts";
import { upsertNode } from "../nodes/store.ts";
import { eventsOf, insertNode, insertSession, reputationOf } from "../../test/support/node-rows.ts";
import { runReputationPass, startReputationScheduler } from "./scheduler.ts";

const logger = pino({ level: "silent" });
const at = (iso: string) => () => Date.parse(iso);

describe.each(testEngines())("reputation scheduler on $name", ({ engine }) => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase({ engine });
  });
  afterAll(async () => {
    await test?.close();
  });
  const db = () => test.db;
  const keysOf = async (nodeId: string) => (await eventsOf(db(), nodeId)).map((e) => e.period_key);

  describe("uptime", () => {
    it("gives +1 for each UTC hour connected at least 55 minutes (03:00-05:30 -> hours 03 and 04)", async () => {
      const node = await insertNode(db());
      await insertSession(db(), node.id, "2026-11-26T03:00:00Z", "2026-11-26T05:30:00Z");
      await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-26T06:10:00Z") });
      const events = await eventsOf(db(), node.id);
      expect(events).toMatchObject([
        {
          rule: "uptime",
          delta: 1,
          period_key: "uptime:2026-11-26T03",
          account_id: node.accountId,
          reputation_after: 101,
          evidence: { hour: "2026-11-26T03", connectedMinutes: 60 },
        },
        { rule: "uptime", delta: 1, period_key: "uptime:2026-11-26T04", reputation_after: 102 },
      ]);
      expect(await reputationOf(db(), node.id)).toBe(102);
      // a second pass, even an hour later, adds nothing for these hours (05 had 30 minutes)
      await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-26T07:10:00Z") });
      expect(await keysOf(node.id)).toEqual(["uptime:2026-11-26T03", "uptime:2026-11-26T04"]);
    });

    it("gives the same 2 events when two schedulers run at once", async () => {
      const node = await insertNode(db());
      await insertSession(db(), node.id, "2026-11-26T03:00:00Z", "2026-11-26T05:30:00Z");
      const schedulers = [0, 1, 2].map(() =>
        startReputationScheduler({ db: db(), logger, now: at("2026-11-26T06:10:00Z"), intervalMs: 3_600_000 }),
      );
      await Promise.all(schedulers.map((s) => s.ready));
      await Promise.all(schedulers.map((s) => s.runNow()));
      await Promise.all(schedulers.map((s) => s.stop()));
      expect(await keysOf(node.id)).toEqual(["uptime:2026-11-26T03", "uptime:2026-11-26T04"]);
      expect(await reputationOf(db(), node.id)).toBe(102);
    });

    it("counts overlapping sessions once and needs 55 minutes", async () => {
      const node = await insertNode(db());
      // a replacing connection overlaps the old one; together 03:00-03:54 = 54 minutes
      await insertSession(db(), node.id, "2026-11-26T03:00:00Z", "2026-11-26T03:30:00Z");
      await insertSession(db(), node.id, "2026-11-26T03:29:00Z", "2026-11-26T03:54:00Z");
      // 04:00-04:20 and 04:25-05:00 = 55 minutes
      await insertSession(db(), node.id, "2026-11-26T04:00:00Z", "2026-11-26T04:20:00Z");
      await insertSession(db(), node.id, "2026-11-26T04:25:00Z", "2026-11-26T05:00:00Z");
      await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-26T05:01:00Z") });
      expect(await keysOf(node.id)).toEqual(["uptime:2026-11-26T04"]);
    });

    it("stops counting an open session left by a dead coordinator shortly after the node's last_seen_at", async () => {
      const node = await insertNode(db(), { lastSeenAt: new Date("2026-11-26T04:20:00Z") });
      await insertSession(db(), node.id, "2026-11-26T03:00:00Z", null);
      await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-26T08:00:00Z") });
      expect(await keysOf(node.id)).toEqual(["uptime:2026-11-26T03"]); // 04 had 22 minutes
    });

    it("ends an open session left behind when the node's next session begins", async () => {
      const node = await insertNode(db(), { lastSeenAt: new Date("2026-11-26T09:00:00Z") });
      await insertSession(db(), node.id, "2026-11-26T03:00:00Z", null); // never closed
      await insertSession(db(), node.id, "2026-11-26T05:00:00Z", "2026-11-26T06:30:00Z");
      await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-26T09:00:00Z") });
      expect(await keysOf(node.id)).toEqual(["uptime:2026-11-26T03", "uptime:2026-11-26T04", "uptime:2026-11-26T05"]);
      // also when the orphan and the session after it are older than the 48 hours looked at
      const other = await insertNode(db(), { lastSeenAt: new Date("2026-11-26T09:00:00Z") });
      await insertSession(db(), other.id, "2026-11-20T03:00:00Z", null);
      await insertSession(db(), other.id, "2026-11-20T05:00:00Z", "2026-11-20T06:00:00Z");
      await insertSession(db(), other.id, "2026-11-26T03:00:00Z", "2026-11-26T04:30:00Z");
      await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-26T09:00:00Z") });
      expect(await keysOf(other.id)).toEqual(["uptime:2026-11-26T03"]);
    });

    it("counts an open session of a live node up to now, and runs passes on its timer", async () => {
      const node = await insertNode(db(), { lastSeenAt: new Date("2026-11-26T09:00:00Z") });
      await insertSession(db(), node.id, "2026-11-26T06:00:00Z", null);
      let clock = Date.parse("2026-11-26T06:59:00Z");
      const changes: [string, number][] = [];
      const scheduler = startReputationScheduler({
        db: db(),
        logger,
        now: () => clock,
        intervalMs: 20,
        onChange: (id, r) => id === node.id && changes.push([id, r]),
      });
      await scheduler.ready;
      expect(await keysOf(node.id)).toEqual([]);
      clock = Date.parse("2026-11-26T08:00:30Z"); // no runNow: the timer's next pass must find hours 06 and 07
      await vi.waitFor(
        async () => expect(await keysOf(node.id)).toEqual(["uptime:2026-11-26T06", "uptime:2026-11-26T07"]),
        { timeout: 5_000 },
      );
      await scheduler.stop();
      expect(changes).toEqual([
        [node.id, 101],
        [node.id, 102],
      ]);
    });
  });

  describe("broken promise", () => {
    it("gives -5 for a promised hour with under 5 minutes connected (promised 3,4; connected at 3 only)", async () => {
      const node = await insertNode(db(), { promisedHours: [3, 4], promisedSince: new Date("2026-11-26T02:00:00Z") });
      await insertSession(db(), node.id, "2026-11-26T03:00:00Z", "2026-11-26T03:50:00Z");
      await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-26T05:10:00Z") });
      // hours 03 and 04 of 25 November are in the catch-up window but before the promise: not judged
      expect(await eventsOf(db(), node.id)).toMatchObject([
        {
          rule: "broken_promise",
          delta: -5,
          period_key: "promise:2026-11-26T04",
          reputation_after: 95,
          evidence: { hour: "2026-11-26T04", connectedMinutes: 0 },
        },
      ]);
      await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-26T06:10:00Z") });
      expect(await reputationOf(db(), node.id)).toBe(95);
    });

    it(
      "forgives a promised hour with 5 minutes connected, hours before the promise, and nodes without " + "one",
      async () => {
        const kept = await insertNode(db(), { promisedHours: [3], promisedSince: new Date("2026-11-26T02:00:00Z") });
        await insertSession(db(), kept.id, "2026-11-26T03:55:00Z", "2026-11-26T04:00:00Z");
        const late = await insertNode(db(), { promisedHours: [3, 4], promisedSince: new Date("2026-11-26T04:30:00Z") });
        const none = await insertNode(db());
        await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-26T05:10:00Z") });
        expect(await eventsOf(db(), kept.id)).toEqual([]);
        expect(await eventsOf(db(), late.id)).toEqual([]); // promised at 04:30: neither 03 nor 04 of that day counts
        expect(await eventsOf(db(), none.id)).toEqual([]);
        // the next day the late promise counts
        await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-27T05:10:00Z") });
        expect(await keysOf(late.id)).toEqual(["promise:2026-11-27T03", "promise:2026-11-27T04"]);
      },
    );

    it("dates a promise from when its hours were first declared, not from every re-registration", async () => {
      const node = await insertNode(db());
      const registration = (hours: number[]) => ({
        id: node.id,
        accountId: node.accountId,
        tier: "MID" as const,
        publicKey: undefined,
        promisedHoursUtc: hours,
        capabilities: {
          modelName: "m",
          parameterCount: 1,
          quantization: "",
          contextLength: 0,
          tokensPerSecond: 20,
          maxConcurrentTasks: 1,
          gpus: [],
          backend: "test",
          agentVersion: "0.1.0",
        },
      });
      const since = async () =>
        (
          await db()
            .selectFrom("nodes")
            .select("promised_hours_since")
            .where("id", "=", node.id)
            .executeTakeFirstOrThrow()
        ).promised_hours_since;
      expect(await since()).toBeNull();
      await upsertNode(db(), registration([3, 4]));
      expect(await since()).toBeInstanceOf(Date);
      const old = new Date("2026-11-20T00:00:00Z");
      await db().updateTable("nodes").set({ promised_hours_since: old }).where("id", "=", node.id).execute();
      await upsertNode(db(), registration([3, 4])); // the same promise again: still dated 20 November
      expect(await since()).toEqual(old);
      await upsertNode(db(), registration([5])); // a new promise is dated now
      expect((await since())!.getTime()).toBeGreaterThan(old.getTime());
      await upsertNode(db(), registration([])); // no promise
      expect(await since()).toBeNull();
    });
  });

  describe("weekly decay", () => {
    it("takes 1% once per ISO week, at the start of the next week", async () => {
      const node = await insertNode(db(), { firstSeenAt: new Date("2026-11-10T12:00:00Z") }); // W46
      const young = await insertNode(db(), { firstSeenAt: new Date("2026-11-18T12:00:00Z") }); // W47
      await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-26T06:00:00Z") }); // in W48
      expect(await eventsOf(db(), node.id)).toMatchObject([
        {
          rule: "weekly_decay",
          delta: -1,
          period_key: "decay:2026-W46",
          reputation_after: 99,
          evidence: { week: "2026-W46" },
        },
        { rule: "weekly_decay", delta: -0.99, period_key: "decay:2026-W47", reputation_after: 98.01 },
      ]);
      expect(await keysOf(young.id)).toEqual(["decay:2026-W47"]);
      await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-29T23:59:00Z") }); // still W48: nothing new
      expect(await reputationOf(db(), node.id)).toBe(98.01);
      await runReputationPass({ db: db(), nowMs: Date.parse("2026-11-30T00:01:00Z") }); // W49 begins: W48 decays
      expect(await keysOf(node.id)).toEqual(["decay:2026-W46", "decay:2026-W47", "decay:2026-W48"]);
      expect(await reputationOf(db(), node.id)).toBe(97.03);
    });
  });

  it("after a restart with a later clock applies only the missing periods", async () => {
    const node = await insertNode(db(), {
      lastSeenAt: new Date("2026-12-05T00:00:00Z"),
      firstSeenAt: new Date("2026-11-25T00:00:00Z"),
    });
    await insertSession(db(), node.id, "2026-11-26T03:00:00Z", null);
    const first = startReputationScheduler({
      db: db(),
      logger,
      now: at("2026-11-26T06:10:00Z"),
      intervalMs: 3_600_000,
    });
    await first.ready;
    await first.stop();
    expect(await keysOf(node.id)).toEqual(["uptime:2026-11-26T03", "uptime:2026-11-26T04", "uptime:2026-11-26T05"]);
    const changes: number[] = [];
    const second = startReputationScheduler({
      db: db(),
      logger,
      now: at("2026-11-26T10:20:00Z"),
      intervalMs: 3_600_000,
      onChange: (id, r) => id === node.id && changes.push(r),
    });
    const summary = await second.ready;
    await second.stop();
    expect(summary.uptime).toBeGreaterThanOrEqual(4);
    expect(changes).toEqual([104, 105, 106, 107]);
    expect(await keysOf(node.id)).toEqual([
      "uptime:2026-11-26T03",
      "uptime:2026-11-26T04",
      "uptime:2026-11-26T05",
      "uptime:2026-11-26T06",
      "uptime:2026-11-26T07",
      "uptime:2026-11-26T08",
      "uptime:2026-11-26T09",
    ]);
    // days later, the catch-up reaches back 48 hours only, and the decay of the week that ended
    await runReputationPass({ db: db(), nowMs: Date.parse("2026-12-01T00:30:00Z") });
    const keys = await keysOf(node.id);
    expect(keys.filter((k) => k?.startsWith("uptime:")).length).toBe(7 + 48);
    expect(keys).toContain("uptime:2026-11-29T00");
    expect(keys).not.toContain("uptime:2026-11-28T23");
    expect(keys.filter((k) => k?.startsWith("decay:"))).toEqual(["decay:2026-W48"]);
  });
});
