// The shipped difficulty model: the file loads and is the one the corpus trains to, a broken file is refused at
// start-up, the cost-aware decision, what it reads of a conversation, and a table of plain requests in 15 languages
// (none from the corpus: a smoke test, the bench measures accuracy).
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { Difficulty } from "../../../common/vocabulary.ts";
import { BUCKETS, FEATURE_VERSION } from "./features.ts";
import {
  classifyLocally,
  decide,
  decodeModel,
  encodeModel,
  LONG_REQUEST_WEIGHT,
  MODEL_FILE,
  ModelFileError,
  shippedModel,
} from "./model.ts";
import { corpusHash } from "./train.ts";

const ask = (content: string) => classifyLocally({ messages: [{ role: "user", content }] });

describe("the shipped model file", () => {
  it("loads: int8 weights for three classes over every bucket, finite scales, biases and offsets", () => {
    const { header, weights } = shippedModel();
    expect(header.featureVersion).toBe(FEATURE_VERSION);
    expect(header.classes).toEqual(["SIMPLE", "COMPLEX", "ADVANCED"]);
    expect(weights).toBeInstanceOf(Int8Array);
    expect(weights.length).toBe(BUCKETS * 3);
    for (const key of ["scales", "bias", "offsets"] as const) expect(header[key].every(Number.isFinite)).toBe(true);
    expect(header.offsets[0]).toBe(0);
  });

  it("was trained on the corpus as committed (train.test.ts retrains it byte for byte)", () => {
    expect(shippedModel().header.training.corpusSha256).toBe(corpusHash());
  });

  it("survives an encode/decode round trip unchanged", () => {
    const bytes = readFileSync(MODEL_FILE);
    expect(Buffer.compare(encodeModel(decodeModel(bytes)), bytes)).toBe(0);
  });

  it.each([
    ["not a model", (_b: Buffer) => Buffer.from("hello world, not a model file")],
    ["truncated", (b: Buffer) => b.subarray(0, b.length - 10)],
    [
      "a header that is not JSON",
      (b: Buffer) =>
        Buffer.concat([b.subarray(0, 12), Buffer.alloc(b.readUInt32LE(8), 0x7b), b.subarray(12 + b.readUInt32LE(8))]),
    ],
    ["other features", (b: Buffer) => withHeader(b, (h) => ({ ...h, featureVersion: FEATURE_VERSION + 1 }))],
    ["two offsets", (b: Buffer) => withHeader(b, (h) => ({ ...h, offsets: [0, 1] }))],
  ])("refuses a file that is %s", (_name, damage) => {
    expect(() => decodeModel(damage(readFileSync(MODEL_FILE)))).toThrow(ModelFileError);
  });
});

function withHeader(bytes: Buffer, change: (header: Record<string, unknown>) => Record<string, unknown>): Buffer {
  const length = bytes.readUInt32LE(8);
  const header = Buffer.from(JSON.stringify(change(JSON.parse(bytes.toString("utf8", 12, 12 + length)))), "utf8");
  const size = Buffer.alloc(4);
  size.writeUInt32LE(header.length);
  return Buffer.concat([bytes.subarray(0, 8), size, header, bytes.subarray(12 + length)]);
}

describe("decide", () => {
  it("adds the offsets before the largest score wins; a tie goes to the harder class", () => {
    expect(decide([1, 0, 0], [0, 0, 0])).toBe("SIMPLE");
    expect(decide([1, 0, 0], [0, 0, 1.5])).toBe("ADVANCED");
    expect(decide([1, 1, 0], [0, 0, 0])).toBe("COMPLEX");
    expect(decide([2, 2, 2], [0, 0, 0])).toBe("ADVANCED");
  });
});

describe("classifyLocally: what it reads", () => {
  it("judges the last user turn; system turns and a closing thank-you after code do not make it harder", () => {
    const code = [
      { role: "system", content: "You are a senior engineer." },
      { role: "user", content: "Write a Python function that merges two sorted lists." },
      { role: "assistant", content: "```python\ndef merge(a, b):\n    return sorted(a + b)\n```" },
    ];
    expect(classifyLocally({ messages: code })).toBe("ADVANCED");
    expect(classifyLocally({ messages: [...code, { role: "user", content: "Thanks a lot, that's all!" }] })).toBe(
      "SIMPLE",
    );
  });

  it("never calls a request a small model's context cannot hold SIMPLE", () => {
    const question = "What is the date in this letter?";
    const letter = "Dear neighbours, the street party is on the first Saturday of June, bring a dish to share. ".repeat(
      30,
    );
    expect(ask(question)).toBe("SIMPLE");
    expect(letter.length).toBeGreaterThan(LONG_REQUEST_WEIGHT);
    expect(ask(`${question}\n\n${letter}`)).not.toBe("SIMPLE");
  });

  it("reads only a window of a megabyte paste: four times as long, the same answer (speed: bench:classifier)", () => {
    const paste = "x".repeat(1_000_000);
    expect(ask(`Summarise this:\n${paste}`)).toBe(ask(`Summarise this:\n${paste.repeat(4)}`));
  });
});

const table: [string, Difficulty, string][] = [
  ["en", "SIMPLE", "How many days are there in a leap year?"],
  ["en", "COMPLEX", "Write a thank-you letter to the volunteers of our food bank."],
  ["en", "ADVANCED", "Write a Java method that checks whether a binary tree is balanced."],
  ["de", "SIMPLE", "Wie spät ist es in Tokio, wenn es in Berlin 12 Uhr ist?"],
  ["de", "ADVANCED", "Beweise, dass die Summe zweier ungerader Zahlen gerade ist."],
  ["fr", "COMPLEX", "Quels sont les avantages et les inconvénients des voitures électriques ?"],
  ["es", "SIMPLE", "¿Cuál es la capital de Chile?"],
  ["it", "COMPLEX", "Spiegami perché le api sono importanti per l'agricoltura."],
  ["pt", "ADVANCED", "Escreve uma query SQL que devolve os cinco produtos mais vendidos."],
  ["ru", "SIMPLE", "Как по-английски «яблоко»?"],
  ["zh", "ADVANCED", "用Python写一个快速排序。"],
  ["ja", "COMPLEX", "電気自動車とハイブリッド車の違いを比較してください。"],
  ["ar", "SIMPLE", "ما معنى كلمة ديمقراطية؟"],
  ["hi", "COMPLEX", "सौर ऊर्जा के फायदे और नुकसान बताइए।"],
  ["tr", "ADVANCED", "JavaScript ile bir dizideki en büyük iki sayıyı bulan bir fonksiyon yaz."],
  ["pl", "SIMPLE", "Jak po angielsku jest „dziękuję”?"],
  ["nl", "COMPLEX", "Schrijf een korte toespraak voor het afscheid van een collega."],
  ["ko", "ADVANCED", "소수가 무한히 많다는 것을 증명해 주세요."],
];

describe("classifyLocally: plain requests across languages", () => {
  // a learned model is allowed a miss on a table this small (the bench has the real figures), never a cheap one
  it("gets nearly all right and sends none below its class", () => {
    const rank = { SIMPLE: 0, COMPLEX: 1, ADVANCED: 2 } as const;
    const answers = table.map(([lang, expected, prompt]) => ({ lang, expected, prompt, answer: ask(prompt) }));
    const wrong = answers.filter((a) => a.answer !== a.expected);
    expect(wrong.filter((a) => rank[a.answer] < rank[a.expected])).toEqual([]);
    expect(wrong.length, JSON.stringify(wrong)).toBeLessThanOrEqual(2);
  });
});
