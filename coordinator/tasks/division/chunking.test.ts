// Table tests of the token estimate and the overlapping split of long documents.
import { describe, expect, it } from "vitest";
import { estimateTokens, splitByTokens } from "./chunking.ts";
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
  const base = { longestMessageTokens: 100, contextBudgetTokens: 3000, difficulty: "COMPLEX" as const, ruleParts: 0, capableNodes: 3 };
  it.each([
    { facts: {}, mode: "single" },
    { facts: { longestMessageTokens: 5000 }, mode: "context" },
    { facts: { longestMessageTokens: 5000, ruleParts: 3 }, mode: "context" },
    { facts: { ruleParts: 3 }, mode: "subtasks" },
    { facts: { ruleParts: 3, difficulty: "SIMPLE" as const }, mode: "single" },
    { facts: { ruleParts: 3, capableNodes: 1 }, mode: "single" },
  ])("$facts → $mode", ({ facts, mode }) => {
    expect(chooseAutoMode({ ...base, ...facts }).mode).toBe(mode);
  });
});
