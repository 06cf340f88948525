// The start-up benchmark: on a backend with its own clock (exact figures), the embedded tiny model and the LM Studio
// stand-in.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTinyGguf } from "../test/fixtures/tiny-gguf.ts";
import { startLmStudioStandin } from "../test/support/lmstudio-standin.ts";
import type { Backend } from "./backends/backend.ts";
import { createLlamaBackend } from "./backends/llama.ts";
import { createOpenAiCompatibleBackend } from "./backends/openai-compatible.ts";
import { benchmarkBackend } from "./benchmark.ts";

let dir: string;
let embedded: Backend;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "iris-bench-"));
  const modelPath = join(dir, "tiny.gguf");
  writeTinyGguf(modelPath);
  embedded = await createLlamaBackend({ modelPath, threads: 1, contextSize: 512 });
});

afterAll(async () => {
  await embedded?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("benchmarkBackend", () => {
  it("measures the embedded tiny model: all requested tokens, a plausible speed", async () => {
    const result = await benchmarkBackend(embedded, { maxTokens: 64, runs: 3 });
    expect(result.completionTokens).toBe(64);
    // ~2,000 tokens/s with one thread on these machines, less on a loaded one (how fast is bench/'s business);
    // a unit slip (per ms, not per s) would land far above this
    expect(result.tokensPerSecond).toBeGreaterThan(0);
    expect(result.tokensPerSecond).toBeLessThan(100_000);
    expect(result.timeToFirstTokenMs).toBeGreaterThan(0);
  });

  it("leaves prompt processing out of the speed and reports it as time to first token", async () => {
    // a backend on a clock of its own: 150 ms before the first token, then one token per 5 ms
    let clock = 0;
    let requests = 0;
    const timed: Backend = {
      kind: "timed",
      describe: async () => ({ name: "timed", parameterCount: 0, quantization: "", contextLength: 0 }),
      async *generate(request) {
        requests++;
        for (let i = 0; i < request.maxTokens; i++) {
          clock += i === 0 ? 150 : 5;
          yield { text: ` w${i}`, tokens: 1 };
        }
        return { promptTokens: 10, completionTokens: request.maxTokens, finishReason: "length" as const };
      },
      close: async () => {},
    };
    const result = await benchmarkBackend(timed, { maxTokens: 30, runs: 3, now: () => clock });
    expect(result.completionTokens).toBe(30);
    expect(result.timeToFirstTokenMs).toBe(150);
    // 29 tokens after the first in 145 ms; counting the 150 ms would give 30 / 0.295 s ≈ 102
    expect(result.tokensPerSecond).toBe(200);
    // one warm-up request, then the measured runs
    expect(requests).toBe(4);
  });

  it("measures the LM Studio stand-in over HTTP, after one warm-up request", async () => {
    const standin = await startLmStudioStandin({
      tokens: Array.from({ length: 40 }, (_, i) => ` w${i}`),
      tokenDelayMs: 1,
    });
    try {
      const backend = createOpenAiCompatibleBackend({ baseUrl: standin.baseUrl, kind: "lmstudio" });
      const result = await benchmarkBackend(backend, { maxTokens: 30, runs: 3 });
      expect(result.completionTokens).toBe(30);
      expect(result.tokensPerSecond).toBeGreaterThan(0);
      expect(standin.requests.filter((r) => r.path === "/v1/chat/completions")).toHaveLength(4);
    } finally {
      await standin.close();
    }
  });

  it("stops when its signal aborts", async () => {
    const controller = new AbortController();
    controller.abort(new Error("shutting down"));
    await expect(benchmarkBackend(embedded, { signal: controller.signal })).rejects.toThrow("shutting down");
  });
});
