// Table tests of the token estimate and the overlapping split of long documents.
import { describe, expect, it } from "vitest";
import { estimateTokens, ratesFor, splitByTokens, tokenWeight } from "./chunking.ts";
import { chooseAutoMode, parseDivisionMode } from "./mode.ts";

describe("estimateTokens", () => {
  it.each([
    { text: "", tokens: 0 },
    { text: "abc", tokens: 1 },
    { text: "a".repeat(35), tokens: 10 },
    { text: "日本語", tokens: 3 },
    { text: "😀", tokens: 1 },
    { text: "The quick brown fox jumps over the lazy dog.", tokens: 13 },
  ])("$text → $tokens", ({ text, tokens }) => {
    expect(estimateTokens(text)).toBe(tokens);
  });
});

describe("tokenizer rates", () => {
  const tiny = { asciiCharsPerToken: 1.1, otherCharsPerToken: 0.5 };

  it("counts with a node's measured rates instead of the estimate", () => {
    expect(estimateTokens("a".repeat(35), { asciiCharsPerToken: 5, otherCharsPerToken: 1 })).toBe(7);
    expect(estimateTokens("日本語", { asciiCharsPerToken: 4, otherCharsPerToken: 1.5 })).toBe(2);
    expect(tokenWeight("ab日", tiny)).toBeCloseTo(2 / 1.1 + 2);
  });

  it("takes the fewest characters per token among the nodes, with a 10 % margin on measured rates", () => {
    expect(ratesFor([])).toEqual({ asciiCharsPerToken: 3.5, otherCharsPerToken: 1 });
    expect(ratesFor([{ tokenizerRates: { asciiCharsPerToken: 4.4, otherCharsPerToken: 2 } }])).toEqual({
      asciiCharsPerToken: 4.4 * 0.9,
      otherCharsPerToken: 2 * 0.9,
    });
    // a node without a tokenizer counts as the estimate; a hungry tokenizer wins where it is hungrier
    const mixed = ratesFor([
      { tokenizerRates: tiny },
      {},
      { tokenizerRates: { asciiCharsPerToken: 4, otherCharsPerToken: 3 } },
    ]);
    expect(mixed.asciiCharsPerToken).toBeCloseTo(1.1 * 0.9);
    expect(mixed.otherCharsPerToken).toBeCloseTo(0.5 * 0.9);
  });

  it("splits into more, smaller chunks for a tokenizer that needs more tokens", () => {
    const document = "the word of a node is the token of the model. ".repeat(200);
    const estimated = splitByTokens(document, 300, 0);
    const measured = splitByTokens(document, 300, 0, (text) => tokenWeight(text, tiny));
    expect(measured.length).toBeGreaterThan(estimated.length * 2);
    for (const chunk of measured) expect(tokenWeight(chunk.text, tiny)).toBeLessThanOrEqual(300);
  });
});

describe("splitByTokens", () => {
  const sentence = (i: number) => `Sentence number ${i} says something about topic ${i % 7}.`;
  const document = Array.from({ length: 400 }, (_, i) => sentence(i) + (i % 10 === 9 ? "\n\n" : " ")).join("");

  it("keeps every chunk within the budget and covers the whole document, in order, with overlap", () => {
    const chunks = splitByTokens(document, 300, 40);
    expect(chunks.length).toBeGreaterThan(4);
    for (const chunk of chunks) expect(estimateTokens(chunk.text)).toBeLessThanOrEqual(301);
    expect(chunks[0]!.start).toBe(0);
    expect(chunks.at(-1)!.end).toBe(document.length);
    for (let i = 1; i < chunks.length; i++) {
      expect(chunks[i]!.start).toBeGreaterThan(chunks[i - 1]!.start);
      expect(chunks[i]!.start).toBeLessThan(chunks[i - 1]!.end); // overlap
      expect(estimateTokens(document.slice(chunks[i]!.start, chunks[i - 1]!.end))).toBeLessThanOrEqual(45);
    }
  });

  it("ends full chunks at a paragraph or sentence end", () => {
    for (const chunk of splitByTokens(document, 300, 40).slice(0, -1)) expect(chunk.text).toMatch(/[.]\s*$/);
  });

  it("returns a short document whole, and nothing for an empty one", () => {
    expect(splitByTokens("Short text.", 100, 10)).toEqual([{ text: "Short text.", start: 0, end: 11, tokens: 4 }]);
    expect(splitByTokens("   ", 100, 10)).toEqual([]);
  });

  it("cuts a word longer than a chunk", () => {
    const chunks = splitByTokens("x".repeat(1000), 50, 0);
    expect(chunks.map((c) => c.text).join("")).toBe("x".repeat(1000));
    for (const chunk of chunks) expect(chunk.tokens).toBeLessThanOrEqual(50);
  });

  it("uses a given token counter (a node's tokenizer)", () => {
    const words = Array.from({ length: 100 }, (_, i) => `w${i}`).join(" ");
    const chunks = splitByTokens(words, 10, 2, (text) => text.trim().split(/\s+/).length);
    expect(chunks[0]!.text.trim().split(" ")).toHaveLength(10);
    expect(chunks[1]!.text.trim().split(" ")[0]).toBe("w8");
  });
});

describe("parseDivisionMode", () => {
  it.each([
    ["consensus", "consensus"],
    [" SUBTASKS ", "subtasks"],
    ["DIVISION_MODE_CONTEXT", "context"],
    ["auto", "auto"],
    ["", "single"],
    ["unspecified", "single"],
    ["majority", undefined],
  ])("%s → %s", (name, mode) => {
    expect(parseDivisionMode(name)).toBe(mode);
  });
});

describe("chooseAutoMode", () => {
  const base = {
    conversationTokens: 100,
    fitsOneNode: true,
    difficulty: "COMPLEX" as const,
    wholeNodes: 3,
    ruleParts: 0,
    partNodes: 0,
  };
  it.each([
    { facts: {}, mode: "single" },
    { facts: { conversationTokens: 5000, fitsOneNode: false }, mode: "context" },
    { facts: { fitsOneNode: false, ruleParts: 3, partNodes: 3 }, mode: "context" },
    { facts: { ruleParts: 3, partNodes: 3 }, mode: "subtasks" },
    { facts: { ruleParts: 3, partNodes: 3, difficulty: "SIMPLE" as const }, mode: "single" },
    { facts: { ruleParts: 3, partNodes: 1, wholeNodes: 1 }, mode: "single" },
    // the request's tier is not online but its parts' is: split (one node is enough), never wait for the tier
    { facts: { wholeNodes: 0, ruleParts: 2, partNodes: 1 }, mode: "subtasks" },
    { facts: { wholeNodes: 0, ruleParts: 2, partNodes: 0 }, mode: "single" },
    { facts: { wholeNodes: 0 }, mode: "single" },
  ])("$facts → $mode", ({ facts, mode }) => {
    expect(chooseAutoMode({ ...base, ...facts }).mode).toBe(mode);
  });
});
