// The one interface every LLM backend of the agent implements (OpenAI-compatible servers, embedded llama.cpp).
import type { ChatRole } from "../../common/vocabulary.ts";

export interface BackendMessage {
  role: ChatRole;
  content: string;
}

export interface GenerateRequest {
  messages: BackendMessage[];
  /**
   * Text already sent to the user by another node: the answer must continue right after it, as if the
   * model had written it (a trailing assistant turn that the backend continues, not a new turn).
   */
  assistantPrefix?: string;
  /** The most tokens to generate. */
  maxTokens: number;
  /** Unset: the backend's own default (0.8 for the embedded engine; the server's default over HTTP). */
  temperature?: number;
  /** Deterministic sampling seed, where the backend supports one. */
  seed?: number;
  /** A model name when the backend serves several; empty or undefined means its default. */
  model?: string;
  /** Aborting stops generation and the backend request (the HTTP request, or the llama.cpp evaluation). */
  signal: AbortSignal;
  /**
   * The caller takes the answer whole (the task's enable_streaming off): a server backend may ask for one answer
   * instead of a stream, when the server's count of its tokens can be relied on.
   */
  whole?: boolean;
}

type FinishReason = "stop" | "length" | "cancelled";

/** A piece of the answer as the backend releases it: a single token, or several that only make text together. */
export interface GeneratedPiece {
  text: string;
  /** Tokens the piece took (at least 1): the engine's own count, or 1 per streamed delta over HTTP. */
  tokens: number;
}

export interface GenerateResult {
  /** 0 when the backend does not report it (some OpenAI-compatible servers send no usage). */
  promptTokens: number;
  /** Tokens of the answer, never above the request's maxTokens; the embedded engine's pieces add up to it. */
  completionTokens: number;
  finishReason: FinishReason;
}

/** What the backend serves, for registration and the tier. */
export interface ModelDescription {
  /**
   * The model's name as the backend reports it (the GGUF's general.name, else its file name, for the embedded engine).
   */
  name: string;
  /** Parameters, from GGUF metadata or parsed from the name; 0 when unknown. */
  parameterCount: number;
  /** e.g. "Q4_K_M", "Q8_0", "F16"; "" when unknown. */
  quantization: string;
  /** Context window in tokens; 0 when unknown. */
  contextLength: number;
}

export interface Backend {
  /** "lmstudio", "ollama", "llama.cpp", "vllm", "openai-compatible" or "embedded". */
  readonly kind: string;
  describe(): Promise<ModelDescription>;
  /**
   * Streams the answer as pieces (in order, as soon as the backend produces them, with their token counts) and
   * returns the usage when done; together they never take more than `maxTokens` tokens. When `signal` aborts,
   * it stops promptly and returns with finishReason "cancelled". Throws BackendError when the backend fails.
   */
  generate(request: GenerateRequest): AsyncGenerator<GeneratedPiece, GenerateResult, void>;
  /** Tokens `text` takes in the model's own tokenizer; absent when the backend offers no tokenizer. */
  countTokens?(text: string): Promise<number>;
  close(): Promise<void>;
}

export type BackendErrorReason = "backend_failed" | "model_unavailable" | "context_too_long";

export class BackendError extends Error {
  constructor(
    readonly reason: BackendErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "BackendError";
  }
}
