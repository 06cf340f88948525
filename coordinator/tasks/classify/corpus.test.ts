// The difficulty corpus: the frozen test split is the one written before training (its hash is pinned here), the
// splits are balanced across the 15 languages and classes, no test prompt is a copy or a near-copy of a prompt that
// training or calibration reads, and the file format is read strictly.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { expandCorpus } from "./augment.ts";
import {
  LANGUAGES,
  loadDevSplit,
  loadMaterial,
  loadTestSplit,
  loadTrainingSeeds,
  parseCorpus,
  TEST_SPLIT_FILE,
  toMessages,
  type CorpusItem,
} from "./corpus.ts";
import { TRAINING } from "./train.ts";

/** Frozen: changing the test split makes every figure measured on it so far incomparable. */
const TEST_SPLIT_SHA256 = "755cf4ef40f8ec8b35ac40543611ba10470d1412dfb3a2ed8b129108e9de005b";

function counts(items: readonly CorpusItem[], key: (item: CorpusItem) => string): Map<string, number> {
  const map = new Map<string, number>();
  for (const item of items) map.set(key(item), (map.get(key(item)) ?? 0) + 1);
  return map;
}

describe("the frozen test split", () => {
  it("is byte for byte the file frozen before training", () => {
    expect(createHash("sha256").update(readFileSync(TEST_SPLIT_FILE)).digest("hex")).toBe(TEST_SPLIT_SHA256);
  });

  it("has 270 prompts: 6 per class in each of the 15 languages", () => {
    const items = loadTestSplit();
    expect(items).toHaveLength(270);
    for (const lang of LANGUAGES) {
      for (const label of ["SIMPLE", "COMPLEX", "ADVANCED"])
        expect(counts(items, (i) => `${i.lang} ${i.label}`).get(`${lang} ${label}`)).toBe(6);
    }
  });

  it("shares no prompt, nor a near-copy of one, with what training and calibration read", () => {
    const shingles = (text: string) => {
      const padded = ` ${text.toLowerCase().replace(/\s+/g, " ")} `;
      const set = new Set<string>();
      for (let i = 0; i + 5 <= padded.length; i++) set.add(padded.slice(i, i + 5));
      return set;
    };
    const seen = [...loadTrainingSeeds(), ...loadDevSplit()].map((item) => shingles(item.text));
    let closest = 0;
    for (const item of loadTestSplit()) {
      const mine = shingles(item.text);
      for (const other of seen) {
        let shared = 0;
        for (const gram of mine) if (other.has(gram)) shared++;
        closest = Math.max(closest, shared / (mine.size + other.size - shared));
      }
    }
    // Jaccard over character 5-grams: the closest pairs share a short frame ("what does X mean?") and nothing else
    expect(closest).toBeLessThan(0.7);
  }, 60_000);
});

describe("the calibration and training prompts", () => {
  it("calibration: 360 prompts, 8 per class in each language", () => {
    const items = loadDevSplit();
    expect(items).toHaveLength(360);
    for (const count of counts(items, (i) => `${i.lang} ${i.label}`).values()) expect(count).toBe(8);
  });

  it("training: every language has every class, and expands to several thousand items", () => {
    const seeds = loadTrainingSeeds();
    const perLanguage = counts(seeds, (i) => `${i.lang} ${i.label}`);
    for (const lang of LANGUAGES)
      for (const label of ["SIMPLE", "COMPLEX", "ADVANCED"])
        expect(perLanguage.get(`${lang} ${label}`)).toBeGreaterThan(60);
    const items = expandCorpus(seeds, loadMaterial(), TRAINING.seed);
    expect(items.length).toBeGreaterThan(15_000);
    expect(new Set(items.map((i) => i.lang))).toEqual(new Set(LANGUAGES));
    // no placeholder survives the expansion
    expect(items.filter((i) => i.messages.some((m) => /\{(?:code|bug|text|doc|log|logs)\}/.test(m.content)))).toEqual(
      [],
    );
  });

  it("expands the same way every time", () => {
    const seeds = loadTrainingSeeds().slice(0, 300);
    const material = loadMaterial();
    expect(expandCorpus(seeds, material, 7)).toEqual(expandCorpus(seeds, material, 7));
  });
});

describe("the corpus format", () => {
  it("reads labels, kinds, languages and line breaks", () => {
    const items = parseCorpus(
      "# de\nS fact: Wie hoch ist der Brocken?\n\n# a comment\nA code: Schreib\\nCode",
      "x.txt",
    );
    expect(items).toEqual([
      { id: "x.txt:2", lang: "de", label: "SIMPLE", kind: "fact", text: "Wie hoch ist der Brocken?" },
      { id: "x.txt:5", lang: "de", label: "ADVANCED", kind: "code", text: "Schreib\nCode" },
    ]);
  });

  it.each([["# en\nX fact: what?"], ["# en\nS: no kind"], ["S fact: no language yet"]])("refuses %j", (source) => {
    expect(() => parseCorpus(source, "x.txt")).toThrow(/x\.txt:\d/);
  });

  it("turns [[role]] markers into a conversation", () => {
    expect(toMessages("[[system]]Be brief.[[user]]Hi[[assistant]]Hello![[user]]Bye")).toEqual([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello!" },
      { role: "user", content: "Bye" },
    ]);
    expect(toMessages("plain")).toEqual([{ role: "user", content: "plain" }]);
  });
});
