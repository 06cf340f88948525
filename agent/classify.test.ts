// classifyWithBackend against a scripted backend: what it asks, how it reads the answer, and when it gives up; and
// against the tiny test GGUF in a 512-token context: the prompt's size in a real tokenizer, and a long request cut to
// fit. (Its random weights answer noise, so only sizes and the refusal are tested on it.)
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLASSIFY_NODE_PROMPT, DifficultyAnswerError, renderForClassification } from "../common/classify-prompt.ts";
import { writeTinyGguf } from "../test/fixtures/tiny-gguf.ts";
import type { Backend, GeneratedPiece, GenerateRequest, GenerateResult } from "./backends/backend.ts";
import { createLlamaBackend } from "./backends/llama.ts";
import { classifyWithBackend, fitToContext } from "./classify.ts";

function scriptedBackend(pieces: string[], options: { fail?: Error; contextLength?: number } = {}) {
  const requests: GenerateRequest[] = [];
  let yielded = 0;
  let closedEarly = false;
  const backend: Backend = {
    kind: "openai-compatible",
    describe: async () => ({
      name: "m",
      parameterCount: 0,
      quantization: "",
      contextLength: options.contextLength ?? 0,
    }),
    close: async () => {},
    async *generate(request): AsyncGenerator<GeneratedPiece, GenerateResult, void> {
      requests.push(request);
      if (options.fail) throw options.fail;
      let finished = false;
      try {
        for (const piece of pieces) {
          yielded++;
          yield { text: piece, tokens: 1 };
        }
        finished = true;
        return { promptTokens: 0, completionTokens: pieces.length, finishReason: "stop" };
      } finally {
        if (!finished) closedEarly = true;
      }
    },
  };
  return { backend, requests, yielded: () => yielded, closedEarly: () => closedEarly };
}

const signal = () => new AbortController().signal;

describe("classifyWithBackend", () => {
  it("asks with the compact node prompt, the fenced prompt, temperature 0 and few tokens", async () => {
    const { backend, requests } = scriptedBackend(['{"difficulty":', '"COMPLEX"}']);
    expect(await classifyWithBackend(backend, "<request>\n[user]\nCompare A and B\n</request>", signal())).toBe(
      "COMPLEX",
    );
    expect(requests[0]).toMatchObject({
      messages: [
        { role: "system", content: CLASSIFY_NODE_PROMPT },
        { role: "user", content: "<request>\n[user]\nCompare A and B\n</request>" },
      ],
      temperature: 0,
    });
    expect(requests[0]!.maxTokens).toBeLessThanOrEqual(32);
  });

  it.each([
    [["ADVANCED"], "ADVANCED"],
    [["Sim", "ple", "."], "SIMPLE"],
    [['{"difficulty":"advanced"}'], "ADVANCED"],
    [["I would say it is ", "SIMPLE"], "SIMPLE"],
    [["Schwierigkeit: KOMPLEX"], "COMPLEX"],
  ])("reads %j as %s", async (pieces, expected) => {
    expect(await classifyWithBackend(scriptedBackend(pieces).backend, "p", signal())).toBe(expected);
  });

  it.each([[["SIMPLE or COMPLEX"]], [['{"difficulty":"EASYISH"}']], [[]]])("refuses %j", async (pieces) => {
    await expect(classifyWithBackend(scriptedBackend(pieces).backend, "p", signal())).rejects.toThrow(
      DifficultyAnswerError,
    );
  });

  it("stops reading a model that runs on, and refuses the answer", async () => {
    const script = scriptedBackend(Array.from({ length: 500 }, () => "word "));
    await expect(classifyWithBackend(script.backend, "p", signal())).rejects.toThrow();
    expect(script.yielded()).toBeLessThan(60);
    expect(script.closedEarly()).toBe(true);
  });

  it("passes the backend's failure and an abort on", async () => {
    await expect(
      classifyWithBackend(scriptedBackend([], { fail: new Error("backend down") }).backend, "p", signal()),
    ).rejects.toThrow("backend down");
    const controller = new AbortController();
    controller.abort(new Error("deadline passed"));
    await expect(classifyWithBackend(scriptedBackend(["SIMPLE"]).backend, "p", controller.signal)).rejects.toThrow(
      "deadline passed",
    );
  });
});

describe("fitToContext", () => {
  const long = renderForClassification([
    { role: "user", content: `Summarise this. ${"The council met on Monday. ".repeat(400)}` },
  ]);

  it("leaves a request whole when the context is unknown or clearly large enough", async () => {
    expect(await fitToContext(scriptedBackend([]).backend, long)).toBe(long);
    expect(await fitToContext(scriptedBackend([], { contextLength: 32_768 }).backend, long)).toBe(long);
  });

  it("cuts the middle of a request a small context cannot hold, keeping both fences", async () => {
    const fitted = await fitToContext(scriptedBackend([], { contextLength: 512 }).backend, long);
    expect(fitted.length).toBeLessThan(long.length / 4);
    expect(fitted.startsWith("<request>\n[user]\nSummarise this.")).toBe(true);
    expect(fitted).toMatch(/<\/request>\n\(The request is [\d,]+ characters long\.\)$/);
  });
});

describe("on the tiny GGUF in a 512-token context", () => {
  let dir: string;
  let backend: Backend;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "iris-classify-"));
    const modelPath = join(dir, "tiny-classify-Q4_K_M.gguf");
    writeTinyGguf(modelPath, { name: "Tiny", contextLength: 512 });
    backend = await createLlamaBackend({ modelPath, threads: 1, contextSize: 512, maxConcurrent: 1 });
  });

  afterAll(async () => {
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the node prompt is under 200 tokens even in a tokenizer that spells most words letter by letter", async () => {
    expect(await backend.countTokens!(CLASSIFY_NODE_PROMPT)).toBeLessThanOrEqual(200);
  });

  it("a long request is cut to fit: the model answers (noise, refused as no difficulty) instead of " +
    "overflowing", async () => {
    const long = renderForClassification([{ role: "user", content: "Compare the two reports below. ".repeat(300) }]);
    const fitted = await fitToContext(backend, long);
    expect(await backend.countTokens!(fitted)).toBeLessThanOrEqual(
      512 - (await backend.countTokens!(CLASSIFY_NODE_PROMPT)) - 24,
    );
    await expect(classifyWithBackend(backend, long, AbortSignal.timeout(30_000))).rejects.toThrow(
      DifficultyAnswerError,
    );
  }, 60_000);
});
