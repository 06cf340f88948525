// Reconnection backoff: exponential bound, capped, with full jitter.
import { describe, expect, it } from "vitest";
import { backoffDelay } from "./connection.ts";

describe("backoffDelay", () => {
  const rows: [attempt: number, random: number, expected: number][] = [
    [1, 1, 1_000],
    [2, 1, 2_000],
    [3, 1, 4_000],
    [6, 1, 30_000], // 32 s capped at 30 s
    [20, 1, 30_000],
    [3, 0.5, 2_000],
    [3, 0, 0],
  ];
  for (const [attempt, random, expected] of rows) {
    it(`attempt ${attempt} with random ${random} waits ${expected} ms`, () => {
      expect(backoffDelay(attempt, 500, 30_000, () => random)).toBe(expected);
    });
  }

  it("spreads reconnecting agents over the whole window", () => {
    let seed = 1;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const delays = Array.from({ length: 1000 }, () => backoffDelay(4, 500, 30_000, random));
    expect(Math.min(...delays)).toBeLessThan(800);
    expect(Math.max(...delays)).toBeGreaterThan(7_200);
  });
});
