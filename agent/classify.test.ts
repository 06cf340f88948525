// classifyWithBackend against a scripted backend: what it asks, how it reads the answer, and when it gives up.
// (The tiny test GGUF has random weights, so a real model would only test noise; the parsing is what matters.)
import { describe, expect, it } from "vitest";
import { CLASSIFY_SYSTEM_PROMPT } from "../common/classify-prompt.ts";
import type { Backend, GeneratedPiece, GenerateRequest, GenerateResult } from "./backends/backend.ts";
import { classifyWithBackend } from "./classify.ts";

function scriptedBackend(pieces: string[], options: { fail?: Error } = {}) {
  const requests: GenerateRequest[] = [];
  let yielded = 0;
  let closedEarly = false;
  const backend: Backend = {
    kind: "openai-compatible",
    describe: async () => ({ name: "m", parameterCount: 0, quantization: "", contextLength: 0 }),
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
  it("asks with the shared system prompt, the fenced prompt, temperature 0 and few tokens", async () => {
    const { backend, requests } = scriptedBackend(['{"difficulty":', '"COMPLEX"}']);
    expect(await classifyWithBackend(backend, "<request>\n[user]\nCompare A and B\n</request>", signal())).toBe("COMPLEX");
    expect(requests[0]).toMatchObject({
      messages: [
        { role: "system", content: CLASSIFY_SYSTEM_PROMPT },
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
  ])("reads %j as %s", async (pieces, expected) => {
    expect(await classifyWithBackend(scriptedBackend(pieces).backend, "p", signal())).toBe(expected);
  });

  it.each([[["I would say it is SIMPLE"]], [["{\"difficulty\":\"EASY\"}"]], [[]]])("refuses %j", async (pieces) => {
    await expect(classifyWithBackend(scriptedBackend(pieces).backend, "p", signal())).rejects.toThrow(/not JSON|must be SIMPLE/);
  });

  it("stops reading a model that runs on, and refuses the answer", async () => {
    const script = scriptedBackend(Array.from({ length: 500 }, () => "word "));
    await expect(classifyWithBackend(script.backend, "p", signal())).rejects.toThrow();
    expect(script.yielded()).toBeLessThan(60);
    expect(script.closedEarly()).toBe(true);
  });

  it("passes the backend's failure and an abort on", async () => {
    await expect(classifyWithBackend(scriptedBackend([], { fail: new Error("backend down") }).backend, "p", signal())).rejects.toThrow("backend down");
    const controller = new AbortController();
    controller.abort(new Error("deadline passed"));
    await expect(classifyWithBackend(scriptedBackend(["SIMPLE"]).backend, "p", controller.signal)).rejects.toThrow("deadline passed");
  });
});
