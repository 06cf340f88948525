// The start-up benchmark on real backends: the embedded tiny model and the LM Studio stand-in with known timings.
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
    // ~2,000 tokens/s with one thread on these machines; a broken measurement lands far outside this band.
    expect(result.tokensPerSecond).toBeGreaterThan(100);
    expect(result.tokensPerSecond).toBeLessThan(100_000);
    expect(result.timeToFirstTokenMs).toBeGreaterThan(0);
    expect(result.timeToFirstTokenMs).toBeLessThan(1000);
  });

  it("leaves prompt processing out of the speed and reports it as time to first token", async () => {
    // 150 ms before the first token, then one token per 5 ms: about 200 tokens/s after the first (timers are
    // millisecond-grained, hence the margin above).
    const standin = await startLmStudioStandin({
      tokens: Array.from({ length: 40 }, (_, i) => ` w${i}`),
      tokenDelayMs: 5,
      firstTokenDelayMs: 150,
    });
    try {
      const backend = createOpenAiCompatibleBackend({ baseUrl: standin.baseUrl, kind: "lmstudio" });
      const result = await benchmarkBackend(backend, { maxTokens: 30, runs: 3 });
      expect(result.completionTokens).toBe(30);
      expect(result.timeToFirstTokenMs).toBeGreaterThanOrEqual(150);
      // Counting the 150 ms would give under 30 / 0.3 s = 100 tokens/s.
      expect(result.tokensPerSecond).toBeGreaterThan(100);
      expect(result.tokensPerSecond).toBeLessThan(250);
      // One warm-up request, then the measured runs.
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
