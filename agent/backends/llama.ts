// The embedded backend: runs a GGUF model in-process with llama.cpp (node-llama-cpp), on the CPU by default.
import { availableParallelism } from "node:os";
import { basename } from "node:path";
import { getLlama, GgufFileType, LlamaCompletion, LlamaLogLevel, type LlamaModel } from "node-llama-cpp";
import { parseModelName } from "../model-info.ts";
import { renderPrompt, type RenderedPrompt } from "./llama-prompt.ts";
import { SequencePool } from "./sequence-pool.ts";
import {
  BackendError,
  type Backend,
  type GeneratedPiece,
  type GenerateRequest,
  type GenerateResult,
  type ModelDescription,
} from "./backend.ts";

export interface LlamaBackendOptions {
  modelPath: string;
  /** CPU threads; default: the CPU's math cores, never more than the machine's cores (oversubscription is ruinous). */
  threads?: number;
  /** Context window per request in tokens; default: the model's trained size, at most 8192 (and what RAM allows). */
  contextSize?: number;
  /** Requests evaluated at once (one context sequence each); further requests wait in FIFO order. Default 1. */
  maxConcurrent?: number;
  /**
   * Use a GPU build when one of node-llama-cpp's prebuilt binaries works here; never builds or downloads. Default
   * false.
   */
  gpu?: boolean;
  /** Receives llama.cpp's warnings and errors; default: node-llama-cpp prints them to the console (the TUI owns it). */
  log?: (level: "error" | "warn" | "info" | "debug", message: string) => void;
}

/** Sampling temperature when the request gives none (LM Studio's default, also node-llama-cpp's suggestion). */
const DEFAULT_TEMPERATURE = 0.8;
const DEFAULT_MAX_CONTEXT = 8192;
// Tokens of left context given to the detokenizer so that a piece keeps its leading space (SentencePiece drops it
// on a first token) and byte sequences join up.
const DETOKENIZER_CONTEXT = 16;
// node-llama-cpp holds back tokens that make no whole text yet (part of a UTF-8 sequence, the start of a stop
// trigger), drops them when it stops at its maxTokens, and generates one more when the last one is partial. So
// the engine gets this much room past the request, and the request's budget is kept here, on released tokens.
const HELD_TOKENS_ALLOWANCE = 32;

const llamaLevels: Partial<Record<LlamaLogLevel, "error" | "warn" | "info" | "debug">> = {
  [LlamaLogLevel.fatal]: "error",
  [LlamaLogLevel.error]: "error",
  [LlamaLogLevel.warn]: "warn",
  [LlamaLogLevel.info]: "info",
};

export async function createLlamaBackend(options: LlamaBackendOptions): Promise<Backend> {
  const cores = availableParallelism();
  const log = options.log;
  const llama = await getLlama({
    gpu: options.gpu ? "auto" : false,
    build: "never",
    maxThreads: options.threads,
    ...(log && { logger: (level: LlamaLogLevel, message: string) => log(llamaLevels[level] ?? "debug", message) }),
  });
  const threads = Math.max(1, Math.min(options.threads ?? llama.cpuMathCores, cores));
  llama.maxThreads = threads;
  try {
    const model = await llama.loadModel({ modelPath: options.modelPath });
    const sequences = Math.max(1, Math.floor(options.maxConcurrent ?? 1));
    const context = await model.createContext({
      contextSize: options.contextSize ?? { max: DEFAULT_MAX_CONTEXT },
      sequences,
      threads,
    });
    const pool = new SequencePool(Array.from({ length: sequences }, () => context.getSequence()));
    return new EmbeddedLlamaBackend(model, pool, context.contextSize, options.modelPath, async () => {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    });
  } catch (error) {
    await llama.dispose();
    throw new BackendError("backend_failed", `cannot load ${options.modelPath}: ${messageOf(error)}`, { cause: error });
  }
}

class EmbeddedLlamaBackend implements Backend {
  readonly kind = "embedded";
  private readonly running = new Set<{ stop: AbortController; done: Promise<unknown> }>();
  private closed = false;

  constructor(
    private readonly model: LlamaModel,
    private readonly pool: SequencePool,
    private readonly contextSize: number,
    private readonly modelPath: string,
    private readonly disposeAll: () => Promise<void>,
  ) {}

  async describe(): Promise<ModelDescription> {
    const { metadata, tensorInfo } = this.model.fileInfo;
    const fileName = basename(this.modelPath).replace(/\.gguf$/i, "");
    const fromFileName = parseModelName(fileName);
    return {
      name: metadata.general.name?.trim() || fileName,
      parameterCount:
        tensorParameterCount(tensorInfo) ||
        parseModelName(metadata.general.size_label ?? "").parameterCount ||
        fromFileName.parameterCount,
      quantization: quantizationName(metadata.general.file_type) || fromFileName.quantization,
      contextLength: this.contextSize,
    };
  }

  async countTokens(text: string): Promise<number> {
    return this.model.tokenize(text).length;
  }

  async *generate(request: GenerateRequest): AsyncGenerator<GeneratedPiece, GenerateResult, void> {
    if (this.closed) throw new BackendError("backend_failed", "the embedded llama.cpp backend is closed");
    let prompt: RenderedPrompt;
    try {
      prompt = renderPrompt(this.model, request.messages, request.assistantPrefix);
    } catch (error) {
      throw new BackendError("backend_failed", `cannot render the chat prompt: ${messageOf(error)}`, { cause: error });
    }
    const promptTokens = prompt.tokens.length + (this.model.tokens.shouldPrependBosToken ? 1 : 0);
    if (promptTokens >= this.contextSize) {
      throw new BackendError(
        "context_too_long",
        `the prompt has ${promptTokens} tokens; the context window is ${this.contextSize}`,
      );
    }
    const cancelled = (completionTokens: number): GenerateResult => ({
      promptTokens,
      completionTokens,
      finishReason: "cancelled",
    });
    const lease = await this.pool.acquire(request.signal);
    if (!lease) return cancelled(0);

    const stop = new AbortController();
    const pieces = new PieceStream();
    const onAbort = () => {
      stop.abort();
      pieces.end(); // the caller sees the stop at once, even while llama.cpp finishes the batch it is evaluating
    };
    request.signal.addEventListener("abort", onAbort, { once: true });
    let completionTokens = 0;
    let textless = 0; // released tokens that made no text yet (a trimmed leading space): they go with the next piece
    let budgetSpent = false;
    let recent = prompt.tokens.slice(-DETOKENIZER_CONTEXT);
    // Without a prefix the answer starts fresh, so the space SentencePiece puts before its first word is dropped.
    let trimLeading = !request.assistantPrefix;
    const completion = new LlamaCompletion({ contextSequence: lease.sequence });
    const done = completion
      .generateCompletionWithMeta(prompt.tokens, {
        signal: stop.signal,
        stopOnAbortSignal: true,
        maxTokens: request.maxTokens + HELD_TOKENS_ALLOWANCE,
        temperature: request.temperature ?? DEFAULT_TEMPERATURE,
        ...(request.seed !== undefined ? { seed: request.seed } : {}),
        customStopTriggers: prompt.stopTriggers,
        // Stop at the end of the window ("length") instead of silently dropping the start of the conversation.
        disableContextShift: true,
        contextShiftSize: 1,
        onToken: (released) => {
          if (budgetSpent) return;
          // Counted as released, so the count is the answer's tokens: an EOG token and a stop trigger's tokens are not.
          const tokens = released.slice(0, request.maxTokens - completionTokens);
          completionTokens += tokens.length;
          textless += tokens.length;
          let text = this.model.detokenize(tokens, false, recent);
          recent = [...recent, ...tokens].slice(-DETOKENIZER_CONTEXT);
          if (trimLeading) {
            text = text.trimStart();
            trimLeading = text === "";
          }
          if (text !== "") {
            pieces.push({ text, tokens: textless });
            textless = 0;
          }
          if (completionTokens >= request.maxTokens) {
            budgetSpent = true;
            stop.abort(); // the engine returns right after this callback
          }
        },
      })
      .finally(() => {
        pieces.end();
        completion.dispose();
        lease.release();
      });
    const run = { stop, done: done.catch(() => undefined) };
    this.running.add(run);
    void run.done.then(() => this.running.delete(run));
    try {
      for await (const piece of pieces.drain()) {
        if (request.signal.aborted) break;
        yield piece;
      }
      if (request.signal.aborted) return cancelled(completionTokens);
      const { metadata } = await done;
      const { stopReason } = metadata;
      const finishReason =
        stopReason === "maxTokens" || (stopReason === "abort" && budgetSpent)
          ? "length"
          : stopReason === "abort"
            ? "cancelled"
            : "stop";
      return { promptTokens, completionTokens, finishReason };
    } catch (error) {
      if (request.signal.aborted) return cancelled(completionTokens);
      throw new BackendError("backend_failed", `llama.cpp generation failed: ${messageOf(error)}`, { cause: error });
    } finally {
      // Also reached when the consumer stops iterating early: end the evaluation; the slot frees itself when it has.
      request.signal.removeEventListener("abort", onAbort);
      stop.abort();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pool.close();
    for (const run of this.running) run.stop.abort();
    await Promise.all([...this.running].map((run) => run.done));
    await this.disposeAll();
  }
}

/** Exact parameter count: the elements of all tensors (0 when the file info lists none). */
export function tensorParameterCount(
  tensors: readonly { dimensions: readonly (number | bigint)[] }[] | undefined,
): number {
  return (tensors ?? []).reduce((sum, tensor) => sum + tensor.dimensions.reduce<number>((n, d) => n * Number(d), 1), 0);
}

/** "Q4_K_M", "F16", "F32"… from `general.file_type`; "" when absent or unknown. */
export function quantizationName(fileType: GgufFileType | undefined): string {
  const name = fileType === undefined ? undefined : GgufFileType[fileType];
  return name ? name.replace(/^(MOSTLY|ALL)_/, "") : "";
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Bridges llama.cpp's token callbacks to an async iteration, buffering pieces the consumer has not taken yet. */
class PieceStream {
  private readonly buffered: GeneratedPiece[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  push(piece: GeneratedPiece): void {
    if (this.ended) return;
    this.buffered.push(piece);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *drain(): AsyncGenerator<GeneratedPiece, void, void> {
    for (;;) {
      const piece = this.buffered.shift();
      if (piece !== undefined) yield piece;
      else if (this.ended) return;
      else await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
