// The reputation rules as pure functions: SPEC deltas, the floor, weekly decay, and what counts as a fast completion.
/*
 * Scores are kept to the cent (2 decimals), all arithmetic is done in integer cents so that the deltas
 * recorded in reputation_events add up exactly to the score: start 100 + sum(applied deltas) = score.
 *
 * Floor: a score never goes below 10. A change that would cross it is clamped, and the event records
 * the delta actually applied (at 15, a -20 timeout applies -5; at 10 it applies 0 and is still recorded).
 *
 * Weekly decay: -1 % of the score at the moment the decay is applied, rounded to the nearest cent
 * (half a cent rounds up), then clamped by the floor like any other change.
 *
 * Fast completion (+5 on top of +10): a completed task is fast when its speed is at or above the 75th
 * percentile (nearest rank) of the speeds of the previous completions of the same difficulty and tier.
 *   - Speed of an answer of >= 32 completion tokens: completion tokens per second of generation, where
 *     generation is first token -> final result on the node that finished it (queueing, classification
 *     and prompt processing are not the node's generation speed).
 *   - Speed of a short answer (< 32 tokens): a rate over a handful of tokens is mostly noise, so it is
 *     compared by response time instead, assignment -> final result on that node (prompt processing
 *     plus generation); expressed as 1000 / responseMs so that higher is faster here as well.
 *   Short and long answers are separate populations: each (difficulty, tier, kind) has its own rolling
 *   window of the last 200 samples, kept in memory and seeded from the tasks table at start. A window
 *   holding fewer than 20 samples calls nothing fast, so the bonus cannot be farmed on an empty network.
 *   A completion is judged against the window as it was, then added to it. Ties count as fast ("at or
 *   above"), so on a network of equally fast nodes most completions earn the bonus.
 */
import type { ReputationRule } from "../db/schema.ts";
import type { Difficulty, NodeTier } from "../../common/vocabulary.ts";

const REPUTATION_FLOOR = 10;

/** The SPEC's deltas, by rule. Weekly decay is a rate, not a delta: see `decayDelta`. */
export const RULE_DELTAS = {
  task_completed: 10,
  fast_completion: 5,
  timeout: -20,
  invalid_response: -50,
  uptime: 1,
  broken_promise: -5,
} as const satisfies Partial<Record<ReputationRule, number>>;

const WEEKLY_DECAY_PERCENT = 1;

const toCents = (score: number): number => Math.round(score * 100);

/** The score after `delta`, kept at or above the floor, and the delta that was actually applied. */
export function applyDelta(current: number, delta: number): { next: number; applied: number } {
  const from = toCents(current);
  const to = Math.max(REPUTATION_FLOOR * 100, from + toCents(delta));
  return { next: to / 100, applied: (to - from) / 100 };
}

/** The weekly decay asked for at score `current`: -1 % of it to the cent (the floor applies afterwards). */
export function decayDelta(current: number): number {
  const cents = Math.round((toCents(current) * WEEKLY_DECAY_PERCENT) / 100);
  return cents === 0 ? 0 : -cents / 100;
}

/** Answers with fewer completion tokens than this are judged by response time, not tokens per second. */
export const SHORT_ANSWER_TOKENS = 32;
const FAST_WINDOW = 200;
const FAST_MIN_SAMPLES = 20;
const FAST_PERCENTILE = 75;

/** What the coordinator measured about one completed task. */
export interface CompletionTiming {
  difficulty: Difficulty;
  tier: NodeTier;
  completionTokens: number;
  /** First token -> final result, on the node that finished the task. */
  generationMs: number;
  /** Assignment -> final result, on that node; only short answers need it. */
  responseMs?: number;
}

export type SpeedKind = "tokens_per_second" | "responses_per_second";

/** A completion's speed (higher is faster), or undefined when the timing cannot say (e.g. zero durations). */
export function speedOf(timing: CompletionTiming): { kind: SpeedKind; value: number } | undefined {
  if (timing.completionTokens >= SHORT_ANSWER_TOKENS) {
    if (!(timing.generationMs > 0)) return undefined;
    return { kind: "tokens_per_second", value: (timing.completionTokens * 1000) / timing.generationMs };
  }
  if (timing.completionTokens <= 0 || timing.responseMs === undefined || !(timing.responseMs > 0)) return undefined;
  return { kind: "responses_per_second", value: 1000 / timing.responseMs };
}

/** The nearest-rank percentile `p` (0-100] of `values`; undefined for no values. */
export function percentile(values: readonly number[], p: number): number | undefined {
  return sortedPercentile(
    [...values].sort((a, b) => a - b),
    p,
  );
}

export interface FastVerdict {
  fast: boolean;
  kind?: SpeedKind;
  speed?: number;
  /** The window's 75th percentile the speed was compared with (undefined below the minimum sample count). */
  threshold?: number;
  samples: number;
}

/** A window's speeds in arrival order (to drop the oldest) and kept sorted (so a percentile is one lookup). */
interface SpeedWindow {
  arrivals: number[];
  sorted: number[];
}

/**
 * Rolling windows of recent completion speeds per (difficulty, tier, kind); see the definition above. Each window
 * is kept sorted as speeds come and go, so judging a completion reads its percentile instead of sorting a copy.
 */
export class FastCompletionTracker {
  readonly #windows = new Map<string, SpeedWindow>();

  constructor(
    readonly windowSize = FAST_WINDOW,
    readonly minSamples = FAST_MIN_SAMPLES,
    readonly percentileRank = FAST_PERCENTILE,
  ) {}

  /** Judges a completion against the window as it is, then adds it to the window. */
  judge(timing: CompletionTiming): FastVerdict {
    const speed = speedOf(timing);
    if (!speed) return { fast: false, samples: 0 };
    const window = this.#window(timing.difficulty, timing.tier, speed.kind);
    const samples = window.sorted.length;
    const threshold = samples >= this.minSamples ? sortedPercentile(window.sorted, this.percentileRank) : undefined;
    this.#push(window, speed.value);
    const fast = threshold !== undefined && speed.value >= threshold;
    return { fast, kind: speed.kind, speed: speed.value, ...(threshold !== undefined ? { threshold } : {}), samples };
  }

  /** Adds a past completion without judging it (seeding from the tasks table, oldest first). */
  record(timing: CompletionTiming): void {
    const speed = speedOf(timing);
    if (speed) this.#push(this.#window(timing.difficulty, timing.tier, speed.kind), speed.value);
  }

  /** How many samples the window of (difficulty, tier, kind) holds. */
  size(difficulty: Difficulty, tier: NodeTier, kind: SpeedKind): number {
    return this.#windows.get(`${difficulty}/${tier}/${kind}`)?.sorted.length ?? 0;
  }

  #window(difficulty: Difficulty, tier: NodeTier, kind: SpeedKind): SpeedWindow {
    const key = `${difficulty}/${tier}/${kind}`;
    let window = this.#windows.get(key);
    if (!window) this.#windows.set(key, (window = { arrivals: [], sorted: [] }));
    return window;
  }

  #push(window: SpeedWindow, value: number): void {
    window.arrivals.push(value);
    window.sorted.splice(insertionIndex(window.sorted, value), 0, value);
    while (window.arrivals.length > this.windowSize) {
      const oldest = window.arrivals.shift()!;
      window.sorted.splice(insertionIndex(window.sorted, oldest), 1);
    }
  }
}

/** percentile() of values already sorted ascending. */
function sortedPercentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1];
}

/** The first index whose value is not below `value` (where it goes, or where it is). */
function insertionIndex(sorted: readonly number[], value: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle]! < value) low = middle + 1;
    else high = middle;
  }
  return low;
}
