// The node's start-up benchmark: how fast its backend generates, for the tier and for routing.
import type { Backend, GenerateRequest } from "./backends/backend.ts";

export interface BenchmarkOptions {
  /** Tokens per measured run. Default 64. */
  maxTokens?: number;
  /** Measured runs; the median is reported. Default 3. */
  runs?: number;
  /** Aborting stops the benchmark; it then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The clock, in milliseconds (default performance.now); tests give one that their backend advances. */
  now?: () => number;
}

export interface BenchmarkResult {
  /** Generation speed after the first token (prompt processing excluded), median over the runs. */
  tokensPerSecond: number;
  /** From sending the request to the first text piece, median over the runs. */
  timeToFirstTokenMs: number;
  /** Tokens generated in the median-speed run. */
  completionTokens: number;
}

// A fixed prompt that a chat model answers at length, so a run is not cut short by an early end of answer.
// Each run starts it with its own number: servers reuse the cached prefix of a repeated prompt, which would
// leave prompt processing out of the time to first token.
function benchmarkMessages(run: number): GenerateRequest["messages"] {
  return [
    { role: "system", content: `Session ${run}. You are a helpful assistant.` },
    {
      role: "user",
      content:
        "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle. Do not stop early.",
    },
  ];
}

interface RunMeasurement {
  tokensPerSecond: number;
  timeToFirstTokenMs: number;
  completionTokens: number;
}

export async function benchmarkBackend(backend: Backend, options: BenchmarkOptions = {}): Promise<BenchmarkResult> {
  const maxTokens = options.maxTokens ?? 64;
  const runs = Math.max(1, Math.floor(options.runs ?? 3));
  const signal = options.signal ?? new AbortController().signal;
  // One short unmeasured run first: LM Studio and Ollama load a model on its first request, and llama.cpp
  // warms its caches; neither is the speed the node will serve at.
  const now = options.now ?? (() => performance.now());
  await measureRun(backend, 0, 2, signal, now);
  const measured: RunMeasurement[] = [];
  for (let run = 0; run < runs; run++) measured.push(await measureRun(backend, run + 1, maxTokens, signal, now));
  const bySpeed = [...measured].sort((a, b) => a.tokensPerSecond - b.tokensPerSecond);
  const middle = bySpeed[Math.floor((bySpeed.length - 1) / 2)]!;
  return {
    tokensPerSecond: middle.tokensPerSecond,
    timeToFirstTokenMs: median(measured.map((run) => run.timeToFirstTokenMs)),
    completionTokens: middle.completionTokens,
  };
}

async function measureRun(
  backend: Backend,
  run: number,
  maxTokens: number,
  signal: AbortSignal,
  now: () => number,
): Promise<RunMeasurement> {
  signal.throwIfAborted();
  const started = now();
  let firstPieceAt: number | undefined;
  let lastPieceAt = started;
  const stream = backend.generate({ messages: benchmarkMessages(run), maxTokens, temperature: 0, seed: 1, signal });
  for (;;) {
    const next = await stream.next();
    if (next.done) {
      signal.throwIfAborted();
      const tokens = next.value.completionTokens;
      const firstAt = firstPieceAt ?? now();
      // The first token carries the prompt processing; speed is the remaining tokens over the time after it.
      const streamingMs = lastPieceAt - firstAt;
      const tokensPerSecond =
        tokens > 1 && streamingMs > 0
          ? ((tokens - 1) * 1000) / streamingMs
          : (tokens * 1000) / Math.max(now() - started, 1e-3);
      return { tokensPerSecond, timeToFirstTokenMs: firstAt - started, completionTokens: tokens };
    }
    lastPieceAt = now();
    firstPieceAt ??= lastPieceAt;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
