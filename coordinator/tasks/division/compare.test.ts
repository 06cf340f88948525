// Table tests of the answer-comparison rule: normalisation, the bounded distance, similarity and majorities.
import { describe, expect, it } from "vitest";
import { answerHash, boundedWordDistance, findMajority, normalizedWords, sameAnswer, similarity } from "./compare.ts";

describe("normalizedWords", () => {
  it.each([
    { text: "Hello, world!", words: ["hello", "world"] },
    { text: "  Hello \n\t WORLD  ", words: ["hello", "world"] },
    { text: "Ｆｕｌｌ－ｗｉｄｔｈ", words: ["full-width"] },
    { text: "π ≈ 3.14.", words: ["π", "3.14"] },
    { text: '"quoted" (aside) — dash', words: ["quoted", "aside", "dash"] },
    { text: "", words: [] },
    { text: "...", words: [] },
  ])("$text → $words", ({ text, words }) => {
    expect(normalizedWords(text)).toEqual(words);
  });
});

/** The textbook O(n·m) distance, to check the banded one against. */
function levenshtein(a: string[], b: string[]): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

describe("boundedWordDistance", () => {
  it.each([
    { a: "a b c", b: "a b c", max: 0, distance: 0 },
    { a: "a b c", b: "a x c", max: 1, distance: 1 },
    { a: "a b c", b: "a x c", max: 0, distance: 1 }, // over the budget of 0: reports 0 + 1
    { a: "a b c d", b: "b c d", max: 2, distance: 1 },
    { a: "", b: "a b", max: 5, distance: 2 },
    { a: "a b c d e f", b: "f e d c b a", max: 2, distance: 3 },
  ])("$a | $b (max $max) → $distance", ({ a, b, max, distance }) => {
    expect(boundedWordDistance(a ? a.split(" ") : [], b ? b.split(" ") : [], max)).toBe(distance);
  });

  it("agrees with the full distance whenever that is within the budget", () => {
    let seed = 7;
    const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
    const words = (n: number) => Array.from({ length: n }, () => "abcd"[Math.floor(random() * 4)]!);
    for (let round = 0; round < 300; round++) {
      const a = words(Math.floor(random() * 12));
      const b = random() < 0.5 ? words(Math.floor(random() * 12)) : a.map((w) => (random() < 0.2 ? "z" : w));
      const max = Math.floor(random() * 8);
      const full = levenshtein(a, b);
      expect(boundedWordDistance(a, b, max)).toBe(full <= max ? full : max + 1);
    }
  });
});

describe("similarity and sameAnswer (threshold 0.9)", () => {
  const ten = "one two three four five six seven eight nine ten";
  it.each([
    { a: ten, b: ten, same: true },
    { a: ten, b: `${ten.toUpperCase().replaceAll(" ", "  ")}.`, same: true }, // case, spacing, final punctuation
    { a: ten, b: ten.replace("five", "FIVE!"), same: true },
    { a: ten, b: ten.replace("five", "5"), same: true }, // one word in ten differs: exactly 0.9
    { a: ten, b: ten.replace("five", "5").replace("nine", "9"), same: false },
    { a: "42", b: "42.", same: true },
    { a: "42", b: "43", same: false },
    { a: "", b: "", same: true },
    { a: "Paris", b: "", same: false },
  ])("$a | $b → $same", ({ a, b, same }) => {
    expect(sameAnswer(a, b, 0.9)).toBe(same);
  });

  it("is 1 − distance / longer length within the budget, and 0 beyond it", () => {
    expect(similarity(["a", "b", "c", "d"], ["a", "b", "c", "x"], 0.7)).toBe(0.75);
    expect(similarity(["a", "b", "c", "d"], ["a", "b", "c", "x"], 0.9)).toBe(0);
  });

  // how quickly: bench/consensus-compare.ts (a wall-clock bound here would fail on a loaded machine)
  it("compares long answers (agreeing ones slide along shared runs; others stop after the budget)", () => {
    const words = Array.from({ length: 20_000 }, (_, i) => `w${i % 97}`);
    const long = words.join(" ");
    const edited = ["first", ...words.slice(1, -1), "last"].join(" ");
    const other = words.map((w) => `${w}x`).join(" ");
    expect(sameAnswer(long, long.replace("w5 ", "v5 "), 0.9)).toBe(true);
    expect(sameAnswer(long, edited, 0.9)).toBe(true);
    expect(sameAnswer(long, other, 0.9)).toBe(false);
  });
});

describe("findMajority", () => {
  const yes = "The capital of France is Paris.";
  const lie = "The capital of France is Lyon, obviously.";
  it.each([
    { answers: [yes, yes, lie], requested: 3, verified: true, representative: 0, agreeing: [0, 1], dissenting: [2] },
    { answers: [lie, yes, yes], requested: 3, verified: true, representative: 1, agreeing: [1, 2], dissenting: [0] },
    // one node failed
    { answers: [yes, yes], requested: 3, verified: true, representative: 0, agreeing: [0, 1], dissenting: [] },
    { answers: [yes, lie], requested: 2, verified: false, representative: 0, agreeing: [0], dissenting: [1] },
    {
      answers: [yes, lie, "Berlin"],
      requested: 3,
      verified: false,
      representative: 0,
      agreeing: [0],
      dissenting: [1, 2],
    },
    {
      answers: [yes, yes, yes, lie, lie],
      requested: 5,
      verified: true,
      representative: 0,
      agreeing: [0, 1, 2],
      dissenting: [3, 4],
    },
    {
      answers: [yes, yes, lie, lie],
      requested: 4,
      verified: false,
      representative: 0,
      agreeing: [0, 1],
      dissenting: [2, 3],
    },
    { answers: [], requested: 3, verified: false, representative: 0, agreeing: [], dissenting: [] },
  ])("$answers.length answers of $requested → verified $verified", ({ answers, requested, ...expected }) => {
    expect(findMajority(answers, requested, 0.9)).toMatchObject(expected);
  });
});

describe("answerHash", () => {
  it("is the hex SHA-256 of the exact text", () => {
    expect(answerHash("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(answerHash("a")).not.toBe(answerHash("a "));
  });
});
