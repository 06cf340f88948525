// Table tests of context mode's budgets: every prompt fits its window with room for its note, notes stay well
// below a chunk, and combining rounds always shrink.
import { describe, expect, it } from "vitest";
import { contextBudgetFor, cutToTokens, MIN_CHUNK_TOKENS, packNotes, SAFETY_TOKENS } from "./budget.ts";
import { ratesFor, tokenWeight } from "./chunking.ts";
import { promptOverheadTokens, widestHeaderTokens } from "./context-prompts.ts";

const ceilings = { contextChunkTokens: 3072, contextNoteTokens: 512, contextOverlapTokens: 128 };
// the generated test model's tokenizer: about one token per character (agent/tokenizer-rates.ts measures 1.01)
const tinyRates = ratesFor([{ tokenizerRates: { asciiCharsPerToken: 1.0125, otherCharsPerToken: 0.4165 } }]);
const estimate = ratesFor([{}]);
const request = "What does the log say about the token?";

describe("contextBudgetFor", () => {
  it.each([
    { rates: tinyRates, window: 512 },
    { rates: tinyRates, window: 2048 },
    { rates: estimate, window: 2048 },
    { rates: estimate, window: 4096 },
    { rates: estimate, window: 131_072 },
  ])("a $window-token window at $rates.asciiCharsPerToken characters a token", ({ rates, window }) => {
    const count = (text: string) => tokenWeight(text, rates);
    const overhead = promptOverheadTokens(request, [], count);
    const header = widestHeaderTokens(count);
    const budget = contextBudgetFor(window, overhead, header, ceilings)!;
    // the largest prompt (overhead and a full chunk) and a whole note fit, with the safety margin
    expect(budget.overheadTokens + budget.chunkTokens + budget.noteTokens + SAFETY_TOKENS).toBeLessThanOrEqual(window);
    expect(budget.chunkTokens).toBeLessThanOrEqual(ceilings.contextChunkTokens);
    // notes well below a chunk: asked for ≤ B / 8, kept at ≤ B / 2 with their header
    expect(budget.noteTokens).toBeLessThanOrEqual(budget.chunkTokens / 8);
    expect(budget.noteCapTokens + header).toBeLessThanOrEqual(budget.chunkTokens / 2);
    // the overlap shrinks with the chunk: never half of it (the 128-token overlap on a 256-token chunk)
    expect(budget.overlapTokens).toBeLessThanOrEqual(budget.chunkTokens / 8);
  });

  it("gives the documented numbers", () => {
    const tiny = (text: string) => tokenWeight(text, tinyRates);
    expect(contextBudgetFor(512, promptOverheadTokens(request, [], tiny), widestHeaderTokens(tiny), ceilings)).toEqual({
      window: 512,
      overheadTokens: 252,
      chunkTokens: 217,
      noteTokens: 27,
      noteCapTokens: 54,
      overlapTokens: 27,
    });
    const estimated = (text: string) => tokenWeight(text, estimate);
    expect(
      contextBudgetFor(4096, promptOverheadTokens(request, [], estimated), widestHeaderTokens(estimated), ceilings),
    ).toMatchObject({
      chunkTokens: 3072,
      noteTokens: 384,
      overlapTokens: 128,
    });
    // an unknown window leaves the ceilings (notes still ≤ B / 8)
    expect(contextBudgetFor(undefined, 100, 7, ceilings)).toMatchObject({
      chunkTokens: 3072,
      noteTokens: 384,
      overlapTokens: 128,
    });
  });

  it("counts the rest of the conversation in the reduce's prompt", () => {
    const count = (text: string) => tokenWeight(text, estimate);
    const persona = [{ role: "system" as const, content: "You are a careful analyst. ".repeat(40) }];
    expect(promptOverheadTokens(request, persona, count)).toBeGreaterThan(
      promptOverheadTokens(request, [], count) + 250,
    );
  });

  it("has no budget when the window leaves no room for a chunk", () => {
    expect(contextBudgetFor(300, 280, 20, ceilings)).toBeUndefined();
    expect(
      contextBudgetFor(280 + SAFETY_TOKENS + MIN_CHUNK_TOKENS + 40, 280, 4, ceilings)?.chunkTokens,
    ).toBeGreaterThanOrEqual(MIN_CHUNK_TOKENS);
  });
});

describe("cutToTokens", () => {
  const words = (text: string) => text.length; // one token a character
  it.each([
    { text: "short note", cap: 20, cut: "short note" },
    { text: "one two three four five", cap: 12, cut: "one two…" },
    { text: "abcdefghijklmnop", cap: 6, cut: "abcde…" },
    { text: "abc", cap: 0, cut: "" },
  ])("$text at $cap → $cut", ({ text, cap, cut }) => {
    expect(cutToTokens(text, cap, words)).toBe(cut);
    expect(words(cutToTokens(text, cap, words))).toBeLessThanOrEqual(Math.max(cap, 0));
  });
});

describe("packNotes", () => {
  it.each([
    {
      weights: [10, 10, 10, 10],
      limit: 20,
      batches: [
        [0, 2],
        [2, 4],
      ],
    },
    {
      weights: [10, 10, 10],
      limit: 20,
      batches: [
        [0, 2],
        [2, 3],
      ],
    },
    { weights: [5, 5, 5, 5, 5], limit: 100, batches: [[0, 5]] },
    {
      weights: [10, 1, 10, 1, 10],
      limit: 20,
      batches: [
        [0, 2],
        [2, 4],
        [4, 5],
      ],
    },
  ])("$weights into ≤ $limit", ({ weights, limit, batches }) => {
    expect(packNotes(weights, limit)).toEqual(batches);
  });

  it("refuses a note over half the limit (the note cap prevents it)", () => {
    expect(() => packNotes([11, 2], 20)).toThrow(RangeError);
  });

  it("shrinks every round: n notes of the largest weight allowed reach one batch in ⌈log2 n⌉ rounds", () => {
    for (const n of [2, 3, 7, 64, 455, 1000]) {
      let notes = n;
      let rounds = 0;
      while (notes > 1) {
        const next = packNotes(new Array<number>(notes).fill(50), 100).length;
        expect(next).toBeLessThanOrEqual(Math.ceil(notes / 2));
        notes = next;
        rounds++;
      }
      expect(rounds).toBeLessThanOrEqual(Math.ceil(Math.log2(n)));
    }
  });
});
