import { describe, expect, it } from "vitest";
import { NOW, testNode } from "../../test/support/live-nodes.ts";
import {
  estimateQueueWaitMs,
  estimateWaitMs,
  expectedServiceMs,
  slotSources,
  type SlotSource,
} from "./wait-estimate.ts";

const sink = (startedAt?: number) => ({
  chunk() {},
  result() {},
  error() {},
  lost() {},
  ...(startedAt !== undefined ? { startedAt } : {}),
});

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
  it("moves as the running task goes on, and is undefined with no capable node", () => {
    const busy = testNode("busy", "PRO");
    busy.served(10_000);
    busy.tasks.set("t1", sink(NOW));
    expect(estimateQueueWaitMs([busy], request, 1, NOW + 2_000)).toBe(8_000);
    expect(estimateQueueWaitMs([busy], request, 1, NOW + 5_000)).toBe(5_000);
    expect(estimateQueueWaitMs([busy], request, 2, NOW + 5_000)).toBe(15_000);
    expect(estimateQueueWaitMs([testNode("basic", "BASIC")], request, 1, NOW)).toBeUndefined();
  });
});
