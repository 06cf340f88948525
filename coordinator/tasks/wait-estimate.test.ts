import { describe, expect, it } from "vitest";
import { NOW, testNode } from "../../test/support/live-nodes.ts";
import { type LiveNode, NodeRegistry } from "../nodes/registry.ts";
import type { RouteRequest } from "./router.ts";
import {
  CAPABLE_FRESH_MS,
  estimateWaitMs,
  expectedServiceMs,
  slotSources,
  type SlotSource,
  WaitEstimates,
} from "./wait-estimate.ts";

const sink = (startedAt?: number) => ({
  chunk() {},
  result() {},
  error() {},
  lost() {},
  ...(startedAt !== undefined ? { startedAt } : {}),
});

function registryOf(nodes: LiveNode[]): NodeRegistry {
  const registry = new NodeRegistry();
  for (const node of nodes) registry.add(node);
  return registry;
}

describe("estimateWaitMs", () => {
  const slot = (serviceMs: number, runningForMs: number[], freeSlots = 0): SlotSource => ({
    serviceMs,
    runningForMs,
    freeSlots,
  });
  it.each<[string, SlotSource[], number, number | undefined]>([
    ["no capable slot", [], 1, undefined],
    ["the next one: the running task's rest", [slot(10_000, [4_000])], 1, 6_000],
    ["second in line: one more service time", [slot(10_000, [4_000])], 2, 16_000],
    ["a task past its expected time ends within a second", [slot(10_000, [12_000])], 1, 1_000],
    ["a free slot (a race) is now", [slot(10_000, [], 1)], 1, 0],
    ["two nodes: the first slot to free", [slot(10_000, [9_000]), slot(4_000, [0])], 1, 1_000],
    ["two nodes: then the other", [slot(10_000, [9_000]), slot(4_000, [0])], 2, 4_000],
    ["two nodes: the fast node again before the slow one", [slot(10_000, [9_000]), slot(4_000, [0])], 3, 8_000],
    ["two slots of one node", [slot(6_000, [1_000, 5_000])], 2, 5_000],
  ])("%s", (_name, sources, position, expected) => {
    expect(estimateWaitMs(sources, position)).toBe(expected);
  });

  it("handles a long queue over many slots", () => {
    const sources = Array.from({ length: 500 }, (_, i) => slot(5_000 + i, [i * 7]));
    expect(estimateWaitMs(sources, 1_000)).toBeGreaterThan(5_000);
  });
});

describe("expectedServiceMs", () => {
  it("is the median of the node's recent service times", () => {
    const node = testNode("a", "MID");
    for (const ms of [9_000, 1_000, 3_000, 100_000]) node.served(ms);
    expect(expectedServiceMs(node)).toBe(6_000);
    node.served(2_000);
    expect(expectedServiceMs(node)).toBe(3_000);
  });
  it("without any, is 256 tokens at the declared speed, or a minute with none declared", () => {
    expect(expectedServiceMs(testNode("a", "MID", { tokensPerSecond: 32 }))).toBe(8_000);
    expect(expectedServiceMs(testNode("b", "BASIC", { tokensPerSecond: 0 }))).toBe(60_000);
  });
  it("keeps the latest 20", () => {
    const node = testNode("a", "MID");
    for (let i = 0; i < 30; i++) node.served(i);
    expect(node.serviceTimes).toEqual(Array.from({ length: 20 }, (_, i) => i + 10));
  });
});

describe("slotSources and the estimate over live nodes", () => {
  const request = { difficulty: "COMPLEX" as const, model: undefined, exclude: new Set<string>() };
  it("counts connected, unpaused nodes whose tier serves the request, with their tasks' running times", () => {
    const busy = testNode("busy", "MID");
    busy.served(10_000);
    busy.tasks.set("t1", sink(NOW - 3_000));
    const paused = testNode("paused", "PRO");
    paused.paused = true;
    const basic = testNode("basic", "BASIC");
    basic.tasks.set("t2", sink(NOW));
    const sources = slotSources([busy, paused, basic], request, NOW);
    expect(sources).toEqual([{ serviceMs: 10_000, runningForMs: [3_000], freeSlots: 0 }]);
  });
  const estimate = (nodes: LiveNode[], position: number, now: number, of: RouteRequest = request) =>
    new WaitEstimates(registryOf(nodes), () => now).estimate(of, position);
  it("moves as the running task goes on, and is undefined with no capable node", () => {
    const busy = testNode("busy", "PRO");
    busy.served(10_000);
    busy.tasks.set("t1", sink(NOW));
    expect(estimate([busy], 1, NOW + 2_000)).toBe(8_000);
    expect(estimate([busy], 1, NOW + 5_000)).toBe(5_000);
    expect(estimate([busy], 2, NOW + 5_000)).toBe(15_000);
    expect(estimate([testNode("basic", "BASIC")], 1, NOW)).toBeUndefined();
  });
});

describe("WaitEstimates: a whole queue's estimates at once", () => {
  const simple: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set() };
  const advanced: RouteRequest = { difficulty: "ADVANCED", model: undefined, exclude: new Set() };
  const busyNode = (id: string, tier: "MID" | "PRO", serviceMs: number, startedAt: number) => {
    const node = testNode(id, tier);
    node.served(serviceMs);
    node.tasks.set(`${id}-t`, sink(startedAt));
    return node;
  };
  const turn = () => new Promise((resolve) => setImmediate(resolve));

  it("gives every position what the estimate of each alone gives, for each set of capable nodes", () => {
    const nodes = [busyNode("mid", "MID", 4_000, NOW - 1_000), busyNode("pro", "PRO", 9_000, NOW - 2_000)];
    const estimates = new WaitEstimates(registryOf(nodes), () => NOW);
    // asked out of order, as waiters announce themselves: the schedule is worked out as far as asked, then read
    for (const position of [5, 1, 3, 8, 2]) {
      expect(estimates.estimate(simple, position)).toBe(estimateWaitMs(slotSources(nodes, simple, NOW), position));
      expect(estimates.estimate(advanced, position)).toBe(estimateWaitMs(slotSources(nodes, advanced, NOW), position));
    }
    expect(estimates.estimate(simple, 1)).toBe(3_000); // mid's task ends first
    expect(estimates.estimate(advanced, 1)).toBe(7_000); // only pro serves ADVANCED
  });

  it("reads the nodes once a turn: what changes counts from the next turn, or 50 ms later", async () => {
    const node = busyNode("n", "PRO", 10_000, NOW);
    let now = NOW;
    const estimates = new WaitEstimates(registryOf([node]), () => now);
    expect(estimates.estimate(simple, 1)).toBe(10_000);
    node.tasks.set("n-t", sink(NOW - 4_000)); // the running task, as if it had started earlier
    now += 49;
    expect(estimates.estimate(simple, 1)).toBe(10_000); // this turn's reading (as of NOW)
    await turn();
    expect(estimates.estimate(simple, 1)).toBe(5_951); // the next turn reads the nodes again
    node.tasks.set("n-t", sink(NOW - 6_000));
    now += 50;
    expect(estimates.estimate(simple, 1)).toBe(3_901); // and so does one 50 ms later, in the same turn
  });

  it("keeps a waiter's capable nodes until one comes, goes, is suspended or excluded, or a second passes", async () => {
    const fast = busyNode("fast", "MID", 2_000, NOW);
    const slow = busyNode("slow", "MID", 8_000, NOW);
    const registry = registryOf([slow]);
    let now = NOW;
    const estimates = new WaitEstimates(registry, () => now);
    const exclude = new Set<string>();
    const request: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude };
    expect(estimates.estimate(request, 1)).toBe(8_000);
    registry.add(fast); // a node joins
    now += 100; // each step a later reading of the slots, too
    expect(estimates.estimate(request, 1)).toBe(1_900);
    fast.suspended = true;
    now += 100;
    expect(estimates.estimate(request, 1)).toBe(7_800);
    fast.suspended = false;
    now += 100;
    expect(estimates.estimate(request, 1)).toBe(1_700);
    exclude.add("fast"); // the request failed over from it
    now += 100;
    expect(estimates.estimate(request, 1)).toBe(7_600);
    // what no event tells (here a window too small for the request from now on) counts within CAPABLE_FRESH_MS
    const windowed: RouteRequest = { ...request, exclude: new Set(), minContext: 4_096 };
    now += 100;
    expect(estimates.estimate(windowed, 1)).toBe(1_500);
    fast.capabilities.contextLength = 1_024;
    now += 100;
    expect(estimates.estimate(windowed, 1)).toBe(1_400); // kept
    now += CAPABLE_FRESH_MS;
    expect(estimates.estimate(windowed, 1)).toBe(6_400); // worked out again: only slow's window holds it
  });
});
