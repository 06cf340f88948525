// The agent's state store: immutable snapshots, throttled notifications, task totals, the capped event log.
import { describe, expect, it } from "vitest";
import { AgentState, EVENT_LOG_LENGTH, maskAccountKey } from "./state.ts";

/** A clock and a timer queue the test moves by hand. */
function manualTime() {
  let now = 1_000_000;
  const timers: { at: number; fn: () => void }[] = [];
  return {
    now: () => now,
    schedule(fn: () => void, ms: number) {
      const timer = { at: now + ms, fn };
      timers.push(timer);
      return () => void timers.splice(timers.indexOf(timer), 1);
    },
    advance(ms: number) {
      now += ms;
      for (const due of timers.filter((t) => t.at <= now)) {
        timers.splice(timers.indexOf(due), 1);
        due.fn();
      }
    },
    pending: () => timers.length,
  };
}

const identity = {
  version: "0.1.0",
  nodeId: "gpu-1",
  accountKey: "1234567890123456",
  coordinatorUrl: "http://c:8080",
  backend: "embedded",
  maxConcurrentTasks: 2,
};

function store() {
  const time = manualTime();
  const state = new AgentState(identity, { now: time.now, schedule: time.schedule, intervalMs: 100 });
  let notified = 0;
  state.subscribe(() => notified++);
  return { state, time, notified: () => notified };
}

describe("maskAccountKey", () => {
  it.each([
    ["1234567890123456", "**** **** **** 3456"],
    ["1234 5678 9012 3456", "**** **** **** 3456"],
    ["12", "****"],
  ])("%s → %s", (key, masked) => expect(maskAccountKey(key)).toBe(masked));
});

describe("AgentState", () => {
  it("never holds the account key itself", () => {
    const { state } = store();
    expect(JSON.stringify(state.snapshot)).not.toContain("1234567890123456");
    expect(state.snapshot.accountKeyMasked).toBe("**** **** **** 3456");
  });

  it("gives frozen snapshots that later changes leave alone", () => {
    const { state } = store();
    state.taskStarted({ taskId: "aaaaaaaa-1", difficulty: "SIMPLE", maxTokens: 10 });
    const before = state.snapshot;
    state.taskToken("aaaaaaaa-1");
    expect(Object.isFrozen(before)).toBe(true);
    expect(Object.isFrozen(before.tasks[0])).toBe(true);
    expect(before.tasks[0]!.tokens).toBe(0);
    expect(state.snapshot.tasks[0]!.tokens).toBe(1);
    expect(state.snapshot).toBe(state.snapshot); // cached until the next change
  });

  it("coalesces a burst of tokens into one notification per interval", () => {
    const { state, time, notified } = store();
    state.taskStarted({ taskId: "aaaaaaaa-1", difficulty: "SIMPLE", maxTokens: 5000 });
    for (let i = 0; i < 1000; i++) state.taskToken("aaaaaaaa-1");
    expect(notified()).toBe(0); // never synchronously, inside the token path
    time.advance(0);
    expect(notified()).toBe(1);
    for (let i = 0; i < 1000; i++) {
      state.taskToken("aaaaaaaa-1");
      time.advance(1); // a token a millisecond for a second
    }
    // at most one notification per 100 ms
    expect(notified()).toBeGreaterThanOrEqual(10);
    expect(notified()).toBeLessThanOrEqual(11);
    time.advance(100);
    expect(state.snapshot.tasks[0]!.tokens).toBe(2000);
  });

  it("counts a piece's tokens, and takes the usage sent to the coordinator as the task's final count", () => {
    const { state } = store();
    state.taskStarted({ taskId: "aaaaaaaa-1", difficulty: "SIMPLE", maxTokens: 450 });
    // bytes of a character come together
    for (let i = 0; i < 100; i++) state.taskToken("aaaaaaaa-1", i % 2 === 0 ? 3 : 1);
    expect(state.snapshot.tasks[0]!.tokens).toBe(200);
    state.taskUsage("aaaaaaaa-1", 450); // the usage sent with the result, which the coordinator records
    expect(state.snapshot.tasks[0]!.tokens).toBe(450);
    state.taskEnded("aaaaaaaa-1", "completed");
    expect(state.snapshot.totals.tokens).toBe(450);
    expect(state.snapshot.events.at(-1)!.text).toMatch(/completed: 450 tokens/);
  });

  it("notifies at once after a quiet spell, and flush() delivers what is pending", () => {
    const { state, time, notified } = store();
    time.advance(1000);
    state.setPaused(true);
    time.advance(0);
    expect(notified()).toBe(1);
    state.setPaused(false);
    expect(time.pending()).toBe(1);
    state.flush();
    expect(notified()).toBe(2);
    expect(time.pending()).toBe(0);
    state.flush(); // nothing changed: no notification
    expect(notified()).toBe(2);
  });

  it("does not notify for a heartbeat ack that repeats the reputation", () => {
    const { state, time, notified } = store();
    state.setReputation(100);
    time.advance(100);
    state.setReputation(100);
    time.advance(100);
    expect(notified()).toBe(1);
  });

  it("keeps tasks and totals through each outcome", () => {
    const { state } = store();
    const outcomes = ["completed", "failed", "cancelled", "handed_back"] as const;
    outcomes.forEach((outcome, i) => {
      state.taskStarted({ taskId: `task-${i}`, difficulty: "COMPLEX", maxTokens: 100 });
      for (let t = 0; t < 3; t++) state.taskToken(`task-${i}`);
      state.taskEnded(`task-${i}`, outcome);
    });
    state.taskRefused("task-9", "the node is paused");
    const s = state.snapshot;
    expect(s.tasks).toEqual([]);
    expect(s.totals).toEqual({ completed: 1, failed: 1, cancelled: 1, handedBack: 1, refused: 1, tokens: 12 });
    expect(s.events.at(-1)).toMatchObject({ level: "warn", text: "task task-9 refused: the node is paused" });
  });

  it(
    "follows the connection: connecting, registered with tier and reputation, reconnecting with when and why, " +
      "refused",
    () => {
      const { state, time } = store();
      state.connecting(0);
      expect(state.snapshot.connection).toEqual({ kind: "connecting", attempt: 0 });
      state.registered({ tier: "MID", tierReason: "8B Q4_K_M counts as 8B (7–20B); 20 tok/s → MID", reputation: 112 });
      expect(state.snapshot.connection).toEqual({ kind: "registered", since: time.now() });
      expect(state.snapshot.tier).toEqual({ name: "MID", reason: "8B Q4_K_M counts as 8B (7–20B); 20 tok/s → MID" });
      expect(state.snapshot.reputation).toBe(112);
      expect(state.snapshot.stage).toBe("");
      state.reconnecting(4000, "connect ECONNREFUSED 127.0.0.1:8080");
      expect(state.snapshot.connection).toEqual({
        kind: "reconnecting",
        at: time.now() + 4000,
        inMs: 4000,
        error: "connect ECONNREFUSED 127.0.0.1:8080",
      });
      state.connecting(1);
      state.reconnecting(8000, "connect ECONNREFUSED 127.0.0.1:8080");
      expect(state.snapshot.events.slice(-2).map((e) => e.text)).toEqual([
        "connection lost: connect ECONNREFUSED 127.0.0.1:8080; retry in 4.0 s",
        "cannot connect: connect ECONNREFUSED 127.0.0.1:8080; retry in 8.0 s",
      ]);
      state.refused("unknown or revoked account key");
      expect(state.snapshot.connection).toEqual({ kind: "refused", error: "unknown or revoked account key" });
      expect(state.snapshot.events.map((e) => e.level)).toEqual(["info", "warn", "warn", "error"]);
    },
  );

  it("follows a re-tier the coordinator reports in heartbeat acks; repeats of the same tier are no news", () => {
    const { state } = store();
    state.registered({
      tier: "PRO",
      tierReason: "8B Q4_K_M counts as 8B (7–20B); 5000 tok/s (> 30) → PRO",
      reputation: 100,
    });
    state.setTier({ name: "PRO", reason: "8B Q4_K_M counts as 8B (7–20B); 5000 tok/s (> 30) → PRO" });
    expect(state.snapshot.events).toHaveLength(1);
    const measured =
      "8B Q4_K_M counts as 8B (7–20B); 19.8 tok/s (10–30) → MID (measured median of 5 answers; declared 5000 tok/s)";
    state.setTier({ name: "MID", reason: measured });
    expect(state.snapshot.tier).toEqual({ name: "MID", reason: measured });
    expect(state.snapshot.events.at(-1)).toMatchObject({
      level: "warn",
      text: `re-tiered by the coordinator: MID (${measured})`,
    });
  });

  it(`keeps the last ${EVENT_LOG_LENGTH} events`, () => {
    const { state } = store();
    for (let i = 0; i < EVENT_LOG_LENGTH + 20; i++) state.event("info", `event ${i}`);
    const events = state.snapshot.events;
    expect(events).toHaveLength(EVENT_LOG_LENGTH);
    expect(events[0]!.text).toBe("event 20");
    expect(events.at(-1)!.text).toBe(`event ${EVENT_LOG_LENGTH + 19}`);
  });

  it("stops notifying a listener once it unsubscribes", () => {
    const { state, time } = store();
    let calls = 0;
    const unsubscribe = state.subscribe(() => calls++);
    state.setStage("benchmarking");
    time.advance(0);
    unsubscribe();
    state.setStage("connecting");
    time.advance(100);
    expect(calls).toBe(1);
  });
});
