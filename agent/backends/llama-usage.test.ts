// The embedded backend's token counts on a model whose tokens are released several at a time (bytes of UTF-8).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTinyGguf } from "../../test/fixtures/tiny-gguf.ts";
import type { Backend, GenerateRequest } from "./backend.ts";
import { createLlamaBackend } from "./llama.ts";

let dir: string;
let backend: Backend;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "iris-llama-usage-"));
  const modelPath = join(dir, "tiny-bytes.gguf");
  writeTinyGguf(modelPath, { byteTokens: true });
  backend = await createLlamaBackend({ modelPath, threads: 1, contextSize: 1024 });
});

afterAll(async () => {
  await backend?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function run(request: Partial<GenerateRequest>) {
  const stream = backend.generate({
    messages: [{ role: "user", content: "Say something." }],
    maxTokens: 8,
    signal: new AbortController().signal,
    ...request,
  });
  const pieces: { text: string; tokens: number }[] = [];
  for (let next = await stream.next(); ; next = await stream.next()) {
    if (next.done) return { pieces, result: next.value };
    pieces.push(next.value);
  }
}

describe("embedded backend usage", () => {
  it("reports exactly max tokens on a model that never stops, and its pieces add up to that", async () => {
    // node-llama-cpp itself released 6 to 9 tokens for maxTokens 8 on this model (held-back bytes dropped at the
    // end, one token past the limit when the last was partial); sampled, so each run differs
    const seen = { runs: 0, multiTokenPieces: 0 };
    for (let i = 0; i < 50; i++) {
      const maxTokens = [8, 24, 1, 13, 450][i % 5]!;
      const { pieces, result } = await run({
        maxTokens,
        messages: [{ role: "user", content: `Say something (${i}).` }],
        seed: i,
      });
      expect(result).toMatchObject({ completionTokens: maxTokens, finishReason: "length" });
      expect(pieces.reduce((sum, piece) => sum + piece.tokens, 0)).toBe(maxTokens);
      expect(pieces.every((piece) => piece.tokens >= 1 && piece.text !== "")).toBe(true);
      seen.runs++;
      seen.multiTokenPieces += pieces.filter((piece) => piece.tokens > 1).length;
    }
    expect(seen.runs).toBe(50);
    expect(seen.multiTokenPieces).toBeGreaterThan(10); // the model really does release tokens together
  });

  it("stops where the budget ends even inside a run of tokens released together", async () => {
    // every budget from 1 to 12 on the same seeded answer: each is a prefix of the next, cut at the exact token
    const answers: string[] = [];
    for (let maxTokens = 1; maxTokens <= 12; maxTokens++) {
      const { pieces, result } = await run({ maxTokens, seed: 7, temperature: 1 });
      expect(result.completionTokens).toBe(maxTokens);
      answers.push(pieces.map((piece) => piece.text).join(""));
    }
    const full = (await run({ maxTokens: 40, seed: 7, temperature: 1 })).pieces.map((piece) => piece.text).join("");
    for (const answer of answers) expect(full.startsWith(answer.replace(/\uFFFD+$/, ""))).toBe(true);
  });
});
