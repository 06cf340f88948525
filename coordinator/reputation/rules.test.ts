// Table tests of the pure reputation rules: deltas, the floor, decay rounding, speed, percentiles and the fast tracker.
import { describe, expect, it } from "vitest";
import {
  applyDelta,
  type CompletionTiming,
  decayDelta,
  FastCompletionTracker,
  percentile,
  RULE_DELTAS,
  speedOf,
} from "./rules.ts";
import { seededRandom } from "../../common/seeded-random.ts";

describe("reputation deltas", () => {
  it("are the SPEC's numbers", () => {
    expect(RULE_DELTAS).toEqual({
      task_completed: 10,
      fast_completion: 5,
      timeout: -20,
      invalid_response: -50,
      uptime: 1,
      broken_promise: -5,
    });
  });
});

describe("applyDelta", () => {
  it.each([
    { current: 100, delta: 10, next: 110, applied: 10 },
    { current: 100, delta: -20, next: 80, applied: -20 },
    { current: 15, delta: -20, next: 10, applied: -5 },
    { current: 12, delta: -50, next: 10, applied: -2 },
    { current: 10, delta: -5, next: 10, applied: 0 },
    { current: 10, delta: 1, next: 11, applied: 1 },
    { current: 10.5, delta: -0.99, next: 10, applied: -0.5 },
    { current: 98.01, delta: 10, next: 108.01, applied: 10 },
    { current: 0.1 + 0.2 + 99.7, delta: -0.99, next: 99.01, applied: -0.99 }, // float noise does not leak
  ])("$current + $delta -> $next (applied $applied)", ({ current, delta, next, applied }) => {
    expect(applyDelta(current, delta)).toEqual({ next, applied });
  });

  it("keeps the sum of applied deltas equal to the score over a long random walk", () => {
    let score = 100;
    let cents = 10_000;
    let seed = 7;
    const rng = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    const choices = [10, 5, -20, -50, 1, -5];
    for (let i = 0; i < 5_000; i++) {
      const delta = rng() < 0.1 ? decayDelta(score) : choices[Math.floor(rng() * choices.length)]!;
      const { next, applied } = applyDelta(score, delta);
      expect(next).toBeGreaterThanOrEqual(10);
      cents += Math.round(applied * 100);
      score = next;
    }
    expect(cents / 100).toBe(score);
  });
});

describe("decayDelta", () => {
  it.each([
    { current: 100, delta: -1 },
    { current: 150, delta: -1.5 },
    { current: 98.5, delta: -0.99 }, // 0.985 rounds half up to 0.99
    { current: 98.49, delta: -0.98 },
    { current: 123.45, delta: -1.23 },
    { current: 10, delta: -0.1 }, // asked for; the floor then applies 0
    { current: 0.4, delta: 0 },
  ])("1% of $current is $delta", ({ current, delta }) => {
    expect(decayDelta(current)).toBe(delta);
  });

  it("never takes a score below the floor", () => {
    expect(applyDelta(10, decayDelta(10))).toEqual({ next: 10, applied: 0 });
    expect(applyDelta(10.05, decayDelta(10.05))).toEqual({ next: 10, applied: -0.05 });
  });
});

const timing = (overrides: Partial<CompletionTiming>): CompletionTiming => ({
  difficulty: "SIMPLE",
  tier: "MID",
  completionTokens: 100,
  generationMs: 10_000,
  ...overrides,
});

describe("speedOf", () => {
  it.each([
    {
      what: "long answer: tokens per second of generation",
      t: { completionTokens: 100, generationMs: 4_000 },
      kind: "tokens_per_second",
      value: 25,
    },
    {
      what: "exactly 32 tokens is long",
      t: { completionTokens: 32, generationMs: 1_000 },
      kind: "tokens_per_second",
      value: 32,
    },
    {
      what: "short answer: responses per second",
      t: { completionTokens: 5, generationMs: 0, responseMs: 500 },
      kind: "responses_per_second",
      value: 2,
    },
  ])("$what", ({ t, kind, value }) => {
    expect(speedOf(timing(t))).toEqual({ kind, value });
  });

  it.each([
    { what: "long answer with no generation time", t: { completionTokens: 100, generationMs: 0 } },
    { what: "short answer without a response time", t: { completionTokens: 5, generationMs: 100 } },
    { what: "empty answer", t: { completionTokens: 0, generationMs: 100, responseMs: 100 } },
  ])("none for $what", ({ t }) => {
    expect(speedOf(timing(t))).toBeUndefined();
  });
});

describe("percentile (nearest rank)", () => {
  it.each([
    { values: [], p: 75, expected: undefined },
    { values: [5], p: 75, expected: 5 },
    { values: [1, 2, 3, 4], p: 75, expected: 3 },
    { values: [4, 3, 2, 1, 5], p: 75, expected: 4 },
    { values: Array.from({ length: 20 }, (_, i) => i + 1), p: 75, expected: 15 },
    { values: [1, 2, 3, 4], p: 100, expected: 4 },
  ])("p$p of $values is $expected", ({ values, p, expected }) => {
    expect(percentile(values, p)).toBe(expected);
  });
});

describe("FastCompletionTracker", () => {
  it("calls nothing fast until the window holds 20 samples", () => {
    const tracker = new FastCompletionTracker();
    for (let i = 0; i < 19; i++) tracker.record(timing({ generationMs: 10_000 })); // 10 tok/s
    expect(tracker.judge(timing({ generationMs: 100 })).fast).toBe(false); // 1000 tok/s, but only 19 samples
    expect(tracker.size("SIMPLE", "MID", "tokens_per_second")).toBe(20);
    expect(tracker.judge(timing({ generationMs: 100 }))).toMatchObject({ fast: true, samples: 20, speed: 1000 });
  });

  it("is fast at or above the 75th percentile and slow below it", () => {
    // a fresh window of speeds 1..20 tok/s for each verdict: p75 = 15
    const judge = (tokensPerSecond: number) => {
      const copy = new FastCompletionTracker();
      for (let s = 1; s <= 20; s++) copy.record(timing({ completionTokens: 100, generationMs: 100_000 / s }));
      return copy.judge(timing({ completionTokens: 100, generationMs: 100_000 / tokensPerSecond }));
    };
    expect(judge(15)).toMatchObject({ fast: true, threshold: 15 });
    expect(judge(14.9).fast).toBe(false);
    expect(judge(40).fast).toBe(true);
  });

  it("keeps difficulties, tiers and short/long answers apart", () => {
    const tracker = new FastCompletionTracker();
    for (let i = 0; i < 25; i++) tracker.record(timing({ difficulty: "COMPLEX", tier: "PRO" }));
    expect(tracker.judge(timing({ difficulty: "SIMPLE", tier: "PRO", generationMs: 1 })).fast).toBe(false);
    expect(tracker.judge(timing({ difficulty: "COMPLEX", tier: "MID", generationMs: 1 })).fast).toBe(false);
    expect(tracker.judge(timing({ difficulty: "COMPLEX", tier: "PRO", completionTokens: 3, responseMs: 1 })).fast).toBe(
      false,
    );
    expect(tracker.judge(timing({ difficulty: "COMPLEX", tier: "PRO", generationMs: 1 })).fast).toBe(true);
  });

  it("judges short answers by response time", () => {
    const tracker = new FastCompletionTracker();
    for (let i = 0; i < 20; i++) tracker.record(timing({ completionTokens: 4, generationMs: 50, responseMs: 2_000 }));
    expect(tracker.judge(timing({ completionTokens: 4, generationMs: 0, responseMs: 3_000 })).fast).toBe(false);
    expect(tracker.judge(timing({ completionTokens: 4, generationMs: 0, responseMs: 400 })).fast).toBe(true);
  });

  it("forgets samples beyond the window", () => {
    const tracker = new FastCompletionTracker(30, 20);
    for (let i = 0; i < 30; i++) tracker.record(timing({ generationMs: 100 })); // fast old samples
    for (let i = 0; i < 30; i++) tracker.record(timing({ generationMs: 10_000 })); // slow recent ones
    expect(tracker.size("SIMPLE", "MID", "tokens_per_second")).toBe(30);
    expect(tracker.judge(timing({ generationMs: 5_000 })).fast).toBe(true); // 20 tok/s beats the recent 10
  });

  it("judges as the percentile of the last windowSize speeds does, with repeats and evictions", () => {
    const random = seededRandom(13);
    const tracker = new FastCompletionTracker(50, 20, 75);
    const speeds: number[] = [];
    for (let i = 0; i < 400; i++) {
      // few distinct values, so equal speeds enter and leave the window
      const generationMs = 1_000 * (1 + Math.floor(random() * 8));
      const last = speeds.slice(-50);
      const verdict = tracker.judge(timing({ completionTokens: 100, generationMs }));
      const speed = 100_000 / generationMs;
      const threshold = last.length >= 20 ? percentile(last, 75) : undefined;
      expect(verdict).toEqual({
        fast: threshold !== undefined && speed >= threshold,
        kind: "tokens_per_second",
        speed,
        ...(threshold !== undefined ? { threshold } : {}),
        samples: last.length,
      });
      speeds.push(speed);
    }
  });
});
