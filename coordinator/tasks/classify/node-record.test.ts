// How long a request may wait for a node, from the node's own classify record.
import { describe, expect, it } from "vitest";
import { percentile, RECENT_ANSWERS, waitFor, withAnswer, type ClassifyRecord } from "./node-record.ts";

const policy = { budgetMs: 2_000, factor: 2, slackMs: 50 };
const record = (...latenciesMs: number[]): ClassifyRecord => ({ answers: latenciesMs.length, latenciesMs });

describe("waitFor", () => {
  it.each([
    ["no record", undefined, undefined],
    ["no answer yet", record(), undefined],
    ["one answer in 100 ms", record(100), 250],
    ["p90 of ten answers is the 9th", record(10, 20, 30, 40, 50, 60, 70, 80, 90, 900), 2 * 90 + 50],
    ["p90 of two answers is the slower", record(100, 750), 1_550],
    ["slow node: capped at the budget", record(1_500), 2_000],
    ["an instant answer still gets the slack", record(0), 50],
  ])("%s", (_name, given, expected) => {
    expect(waitFor(given, policy)).toBe(expected);
  });
});

describe("withAnswer", () => {
  it("counts answers and keeps only the latest latencies", () => {
    let r: ClassifyRecord | undefined;
    for (let i = 1; i <= RECENT_ANSWERS + 5; i++) r = withAnswer(r, i);
    expect(r!.answers).toBe(RECENT_ANSWERS + 5);
    expect(r!.latenciesMs).toHaveLength(RECENT_ANSWERS);
    expect(r!.latenciesMs[0]).toBe(6);
    expect(withAnswer(undefined, -3).latenciesMs).toEqual([0]); // a clock step back is not a negative latency
  });
});

describe("percentile", () => {
  it("is the nearest rank, NaN when empty", () => {
    expect(percentile([3, 1, 2], 50)).toBe(2);
    expect(percentile([5], 90)).toBe(5);
    expect(percentile([], 90)).toBeNaN();
  });
});
