// The reputation ledger against a real database: event rows, the floor, exact sums, concurrency, the fast bonus,
// history.
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase, testEngines } from "../../test/support/database.ts";
import {
  completionOf,
  eventsOf,
  insertCompletedTask,
  insertNode,
  insertTask,
  reputationOf,
} from "../../test/support/node-rows.ts";
import { applyReputationEvent, loadFastTracker, reputationHistory } from "./ledger.ts";
import { OutcomesNotNewError, writeNewTaskOutcomesIn } from "./new-outcomes.ts";
import { recordTaskOutcome, writeTaskOutcomesIn, type PlannedEvent, type TaskOutcomeInput } from "./outcomes.ts";
import { decayDelta, FastCompletionTracker } from "./rules.ts";

describe.each(testEngines())("reputation ledger on $name", ({ engine }) => {
  let test: TestDatabase;
  beforeAll(async () => {
    test = await createTestDatabase({ engine });
  });
  afterAll(async () => {
    await test?.close();
  });
  const db = () => test.db;

  it.each([
    { outcome: "completed" as const, rule: "task_completed", delta: 10, after: 110 },
    { outcome: "timeout" as const, rule: "timeout", delta: -20, after: 80 },
    { outcome: "invalid_response" as const, rule: "invalid_response", delta: -50, after: 50 },
  ])("records $outcome as $rule $delta with an auditable event row", async ({ outcome, rule, delta, after }) => {
    const node = await insertNode(db());
    const taskId = await insertTask(db(), node);
    const result = await recordTaskOutcome(db(), new FastCompletionTracker(), {
      nodeId: node.id,
      accountId: node.accountId,
      taskId,
      difficulty: "SIMPLE",
      tier: "MID",
      outcome,
      completionTokens: 80,
      generationMs: 4_000,
    });
    expect(result).toEqual({ reputation: after, delta, fast: false, applied: true });
    expect(await reputationOf(db(), node.id)).toBe(after);
    const events = await eventsOf(db(), node.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      node_id: node.id,
      account_id: node.accountId,
      rule,
      delta,
      task_id: taskId,
      period_key: `task:${taskId}`,
      reputation_after: after,
      evidence: { difficulty: "SIMPLE", tier: "MID", completionTokens: 80 },
    });
    expect(events[0]?.created_at).toBeInstanceOf(Date);
  });

  it("records a task's outcome for a node once, however often it is reported", async () => {
    const node = await insertNode(db());
    const taskId = await insertTask(db(), node);
    const input = {
      nodeId: node.id,
      accountId: node.accountId,
      taskId,
      difficulty: "SIMPLE" as const,
      tier: "MID" as const,
      outcome: "timeout" as const,
      completionTokens: 0,
      generationMs: 0,
    };
    await recordTaskOutcome(db(), new FastCompletionTracker(), input);
    expect(await recordTaskOutcome(db(), new FastCompletionTracker(), input)).toEqual({
      reputation: 80,
      delta: 0,
      fast: false,
      applied: false,
    });
    expect(await eventsOf(db(), node.id)).toHaveLength(1);
    expect(await reputationOf(db(), node.id)).toBe(80);
  });

  it("stops at the floor and records the delta actually applied (12 - 50 -> 10, event -2)", async () => {
    const node = await insertNode(db(), { reputation: 12 });
    const taskId = await insertTask(db(), node);
    const result = await recordTaskOutcome(db(), new FastCompletionTracker(), {
      nodeId: node.id,
      accountId: node.accountId,
      taskId,
      difficulty: "COMPLEX",
      tier: "MID",
      outcome: "invalid_response",
      completionTokens: 5,
      generationMs: 100,
    });
    expect(result).toMatchObject({ reputation: 10, delta: -2 });
    expect(await reputationOf(db(), node.id)).toBe(10);
    expect(await eventsOf(db(), node.id)).toMatchObject([
      { rule: "invalid_response", delta: -2, reputation_after: 10 },
    ]);
    // at the floor a penalty still leaves its (zero) trace
    const again = await applyReputationEvent(db(), {
      nodeId: node.id,
      accountId: node.accountId,
      rule: "timeout",
      delta: -20,
    });
    expect(again).toEqual({ applied: true, reputation: 10, delta: 0 });
  });

  it("applies an event with a period key once and reports the duplicate as not applied", async () => {
    const node = await insertNode(db());
    const event = {
      nodeId: node.id,
      accountId: node.accountId,
      rule: "uptime" as const,
      delta: 1,
      periodKey: "uptime:2026-11-26T03",
    };
    expect(await applyReputationEvent(db(), event)).toEqual({ applied: true, reputation: 101, delta: 1 });
    expect(await applyReputationEvent(db(), event)).toEqual({ applied: false, reputation: 101, delta: 0 });
    expect(await eventsOf(db(), node.id)).toHaveLength(1);
  });

  it("computes a delta from the score at the moment it applies (decay)", async () => {
    const node = await insertNode(db(), { reputation: 98.5 });
    const result = await applyReputationEvent(db(), {
      nodeId: node.id,
      accountId: node.accountId,
      rule: "weekly_decay",
      delta: decayDelta,
      periodKey: "decay:2026-W47",
    });
    expect(result).toEqual({ applied: true, reputation: 97.51, delta: -0.99 });
  });

  it("refuses an event for an unknown node and writes nothing", async () => {
    const node = await insertNode(db());
    await expect(
      applyReputationEvent(db(), { nodeId: "no-such-node", accountId: node.accountId, rule: "admin", delta: 5 }),
    ).rejects.toThrow(/unknown node no-such-node/);
    const { rows } = await sql<{
      n: number;
    }>`select count(*)::int as n from reputation_events where node_id = ${"no-such-node"}`.execute(db());
    expect(rows[0]?.n).toBe(0);
  });

  it("writes new completions in one statement as the full path does, and keeps nothing on a retry", async () => {
    const [a, b] = [await insertNode(db()), await insertNode(db())];
    // a score with cents (after a decay), so that each event's score after it is counted to the cent
    await db().updateTable("nodes").set({ reputation: 99.01 }).where("id", "in", [a.id, b.id]).execute();
    const plans: PlannedEvent[][] = [
      [{ rule: "task_completed", delta: 10, evidence: { n: 1 } }],
      [
        { rule: "task_completed", delta: 10, evidence: { n: 2 } },
        { rule: "fast_completion", delta: 5, evidence: { n: 2 }, requires: "task_completed" },
      ],
      [{ rule: "task_completed", delta: 10, evidence: { n: 3 } }],
    ];
    const inputsFor = async (node: typeof a): Promise<TaskOutcomeInput[]> => {
      const inputs: TaskOutcomeInput[] = [];
      for (let i = 0; i < plans.length; i++) {
        const taskId = await insertTask(db(), node);
        inputs.push(completionOf(node, taskId));
      }
      return inputs;
    };
    const [forA, forB] = [await inputsFor(a), await inputsFor(b)];
    const fast = await db()
      .transaction()
      .execute((tx) => writeNewTaskOutcomesIn(tx, forA, plans));
    const full = await db()
      .transaction()
      .execute((tx) => writeTaskOutcomesIn(tx, forB, plans));
    expect(fast).toEqual(full);
    expect(fast.map((r) => r.reputation)).toEqual([109.01, 124.01, 134.01]);
    const rows = async (nodeId: string) =>
      (await eventsOf(db(), nodeId))
        .map((e) => ({ rule: e.rule, delta: e.delta, after: e.reputation_after, evidence: e.evidence }))
        .sort((x, y) => (x.after ?? 0) - (y.after ?? 0) || x.rule.localeCompare(y.rule));
    expect(await rows(a.id)).toEqual(await rows(b.id));
    expect(await reputationOf(db(), a.id)).toBe(await reputationOf(db(), b.id));
    // the same outcomes again: not new, so nothing of the try is kept; an unknown node neither
    await expect(
      db()
        .transaction()
        .execute((tx) => writeNewTaskOutcomesIn(tx, forA, plans)),
    ).rejects.toThrow(OutcomesNotNewError);
    const stranger = forA.map((input) => ({ ...input, nodeId: "no-such-node" }));
    await expect(
      db()
        .transaction()
        .execute((tx) => writeNewTaskOutcomesIn(tx, stranger, plans)),
    ).rejects.toThrow(OutcomesNotNewError);
    expect(await reputationOf(db(), a.id)).toBe(134.01);
    expect(await eventsOf(db(), a.id)).toHaveLength(4);
  });

  it("keeps start 100 + sum of deltas = score over a random mix of 200 events", async () => {
    const node = await insertNode(db());
    let seed = 42;
    const rng = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const rules = [
      { rule: "task_completed" as const, delta: 10 },
      { rule: "fast_completion" as const, delta: 5 },
      { rule: "timeout" as const, delta: -20 },
      { rule: "invalid_response" as const, delta: -50 },
      { rule: "uptime" as const, delta: 1 },
      { rule: "broken_promise" as const, delta: -5 },
      { rule: "weekly_decay" as const, delta: decayDelta },
    ];
    for (let i = 0; i < 200; i++) {
      const pick = rules[Math.floor(rng() * rules.length)]!;
      await applyReputationEvent(db(), { nodeId: node.id, accountId: node.accountId, ...pick, periodKey: `mix:${i}` });
    }
    const events = await eventsOf(db(), node.id);
    expect(events).toHaveLength(200);
    expect(events.some((e) => e.reputation_after === 10)).toBe(true); // the walk did hit the floor
    const score = await reputationOf(db(), node.id);
    const cents = events.reduce((sum, e) => sum + Math.round(e.delta * 100), 10_000);
    expect(cents / 100).toBe(score);
    // the same check in the database, in exact decimal arithmetic
    const { rows } = await sql<{ ok: boolean }>`
      select 100 + sum(e.delta::numeric) = (select n.reputation::numeric from nodes n where n.id = ${node.id}) as ok
      from reputation_events e where e.node_id = ${node.id}`.execute(db());
    expect(rows[0]?.ok).toBe(true);
    // and each event's reputation_after is the previous one plus its delta
    let running = 100;
    for (const e of events) {
      running = Math.round((running + e.delta) * 100) / 100;
      expect(e.reputation_after).toBe(running);
    }
  });

  it("loses no update when 50 events for one node apply at once", async () => {
    const node = await insertNode(db());
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        applyReputationEvent(db(), {
          nodeId: node.id,
          accountId: node.accountId,
          rule: i % 5 === 0 ? "broken_promise" : "uptime",
          delta: i % 5 === 0 ? -5 : 1,
        }),
      ),
    );
    expect(results.every((r) => r.applied)).toBe(true);
    // 40 x +1 and 10 x -5
    expect(await reputationOf(db(), node.id)).toBe(90);
    const events = await eventsOf(db(), node.id);
    expect(events).toHaveLength(50);
    expect(events.at(-1)?.reputation_after).toBe(90);
    // each event saw the score the previous one left: the chain of reputation_after is unbroken
    let running = 100;
    for (const e of events) {
      running += e.delta;
      expect(e.reputation_after).toBe(running);
    }
  });

  it("applies one of 20 concurrent events with the same period key", async () => {
    const node = await insertNode(db());
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        applyReputationEvent(db(), {
          nodeId: node.id,
          accountId: node.accountId,
          rule: "uptime",
          delta: 1,
          periodKey: "uptime:2026-11-26T04",
        }),
      ),
    );
    expect(results.filter((r) => r.applied)).toHaveLength(1);
    expect(await reputationOf(db(), node.id)).toBe(101);
    expect(await eventsOf(db(), node.id)).toHaveLength(1);
  });

  describe("fast completion", () => {
    type Pair = { difficulty: "ADVANCED" | "COMPLEX"; tier: "PRO" | "BASIC" };
    const completion = (node: { id: string; accountId: string }, taskId: string, generationMs: number, pair: Pair) => ({
      nodeId: node.id,
      accountId: node.accountId,
      taskId,
      ...pair,
      outcome: "completed" as const,
      completionTokens: 500,
      generationMs,
    });

    it("is never awarded with fewer than 20 recent completions of the same difficulty and tier", async () => {
      const peer = await insertNode(db(), { tier: "PRO" });
      for (let i = 0; i < 19; i++)
        await insertCompletedTask(db(), peer, {
          difficulty: "ADVANCED",
          tier: "PRO",
          completionTokens: 500,
          generationMs: 50_000,
        });
      // plenty of samples, but for another difficulty or tier
      for (let i = 0; i < 25; i++)
        await insertCompletedTask(db(), peer, {
          difficulty: "COMPLEX",
          tier: "PRO",
          completionTokens: 500,
          generationMs: 50_000,
        });
      for (let i = 0; i < 25; i++)
        await insertCompletedTask(db(), peer, {
          difficulty: "ADVANCED",
          tier: "MID",
          completionTokens: 500,
          generationMs: 50_000,
        });
      const tracker = await loadFastTracker(db());
      expect(tracker.size("ADVANCED", "PRO", "tokens_per_second")).toBe(19);
      const node = await insertNode(db(), { tier: "PRO" });
      const taskId = await insertTask(db(), node, "ADVANCED");
      const result = await recordTaskOutcome(
        db(),
        tracker,
        completion(node, taskId, 1_000, { difficulty: "ADVANCED", tier: "PRO" }),
      ); // 500 tok/s vs 10
      expect(result).toEqual({ reputation: 110, delta: 10, fast: false, applied: true });
      expect((await eventsOf(db(), node.id)).map((e) => e.rule)).toEqual(["task_completed"]);
    });

    it("adds +5 (+15 in all) for a clearly fast completion once 20 samples exist", async () => {
      const pair = { difficulty: "COMPLEX", tier: "BASIC" } as const;
      const peer = await insertNode(db(), { tier: "BASIC" });
      for (let i = 0; i < 20; i++)
        await insertCompletedTask(db(), peer, {
          ...pair,
          completionTokens: 500,
          generationMs: i === 0 ? 40_000 : 50_000,
        });
      const tracker = await loadFastTracker(db());
      expect(tracker.size("COMPLEX", "BASIC", "tokens_per_second")).toBe(20);
      const node = await insertNode(db(), { tier: "BASIC" });
      const fastTask = await insertTask(db(), node, "COMPLEX");
      const result = await recordTaskOutcome(db(), tracker, completion(node, fastTask, 1_000, pair));
      expect(result).toEqual({ reputation: 115, delta: 15, fast: true, applied: true });
      const events = await eventsOf(db(), node.id);
      expect(events).toMatchObject([
        { rule: "task_completed", delta: 10, task_id: fastTask, reputation_after: 110 },
        {
          rule: "fast_completion",
          delta: 5,
          task_id: fastTask,
          reputation_after: 115,
          evidence: { kind: "tokens_per_second", speed: 500, p75: 10, samples: 20 },
        },
      ]);
      // a slow completion right after gets the +10 only
      const slowTask = await insertTask(db(), node, "COMPLEX");
      expect(await recordTaskOutcome(db(), tracker, completion(node, slowTask, 100_000, pair))).toMatchObject({
        reputation: 125,
        delta: 10,
        fast: false,
      });
    });
  });

  it("lists history newest first with the score after each event, by node and by account", async () => {
    const node = await insertNode(db());
    const sibling = await insertNode(db(), { accountId: node.accountId });
    await applyReputationEvent(db(), {
      nodeId: node.id,
      accountId: node.accountId,
      rule: "uptime",
      delta: 1,
      periodKey: "h1",
    });
    await applyReputationEvent(db(), { nodeId: sibling.id, accountId: node.accountId, rule: "timeout", delta: -20 });
    await applyReputationEvent(db(), {
      nodeId: node.id,
      accountId: node.accountId,
      rule: "broken_promise",
      delta: -5,
      periodKey: "h2",
    });
    const byNode = await reputationHistory(db(), { nodeId: node.id }, 10);
    expect(byNode.map((e) => [e.rule, e.delta, e.reputation_after])).toEqual([
      ["broken_promise", -5, 96],
      ["uptime", 1, 101],
    ]);
    const byAccount = await reputationHistory(db(), { accountId: node.accountId }, 10);
    expect(byAccount.map((e) => [e.node_id, e.reputation_after])).toEqual([
      [node.id, 96],
      [sibling.id, 80],
      [node.id, 101],
    ]);
    expect(await reputationHistory(db(), { accountId: node.accountId }, 2)).toHaveLength(2);
  });
});
