// The backend for a local OpenAI-compatible LLM server: LM Studio, Ollama, llama.cpp server or vLLM, over HTTP + SSE.
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { estimateTokens } from "../../common/classify-prompt.ts";
import { parseModelName } from "../model-info.ts";
import {
  BackendError,
  type Backend,
  type GeneratedPiece,
  type GenerateRequest,
  type GenerateResult,
  type ModelDescription,
} from "./backend.ts";
import { createHttpTransport, type HttpAnswer, type HttpTransport } from "./http-client.ts";
import {
  type AnswerSource,
  describeFailure,
  errorOf,
  newStreamState,
  ok,
  piecesOfRead,
  readEvent,
  serverError,
  type ServerJson,
} from "./openai-answers.ts";

type OpenAiCompatibleKind = "lmstudio" | "ollama" | "llama.cpp" | "vllm" | "openai-compatible";

export interface OpenAiCompatibleOptions {
  /** The server's OpenAI API root, e.g. http://localhost:1234/v1. */
  baseUrl: string;
  kind?: OpenAiCompatibleKind;
  /** The model to serve; default: the server's loaded chat model, else the first one it lists. */
  model?: string;
  apiKey?: string;
  /** How requests are sent; default: node:http on a keep-alive pool of the backend's own (tests wrap it). */
  transport?: HttpTransport;
}

// Model listings should answer at once; a server that does not is treated as down rather than waited for.
const LIST_TIMEOUT_MS = 10_000;
/** An entry of `GET /v1/models`; llama.cpp adds `meta`, vLLM `max_model_len`. */
interface ListedModel {
  id: string;
  meta?: { n_params?: number; n_ctx_train?: number };
  max_model_len?: number;
}

/** An entry of LM Studio's `GET /api/v0/models`. */
interface LmStudioModel {
  id: string;
  type?: string;
  state?: string;
  quantization?: string;
  max_context_length?: number;
  loaded_context_length?: number;
}

/** A count from the server's usage when it is one (a whole number, not negative); its JSON is not checked otherwise. */
function tokenCount(value: unknown): number | undefined {
  return Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : undefined;
}

export function createOpenAiCompatibleBackend(options: OpenAiCompatibleOptions): Backend {
  return new OpenAiCompatibleBackend(options);
}

class OpenAiCompatibleBackend implements Backend {
  readonly kind: OpenAiCompatibleKind;
  private readonly baseUrl: string;
  private readonly send: HttpTransport;
  /** The pool this backend made (none when the options brought a transport); closed with the backend. */
  private readonly pool: ReturnType<typeof createHttpTransport> | undefined;
  private readonly inFlight = new Set<AbortController>();
  private closed = false;
  /**
   * Set once a whole answer (`stream: false`) came without a count of its tokens, or with more than max_tokens: the
   * server's count cannot be relied on, and whole answers are streamed from then on, where every delta is counted.
   */
  private wholeUncounted = false;
  /** The model chosen by describe(), used when neither the options nor the request name one. */
  private chosenModel: string | undefined;
  /** Present for servers with a tokenizer endpoint (llama.cpp's server and vLLM: `POST /tokenize`). */
  readonly countTokens?: (text: string) => Promise<number>;

  constructor(private readonly options: OpenAiCompatibleOptions) {
    this.kind = options.kind ?? "openai-compatible";
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.pool = options.transport ? undefined : createHttpTransport();
    this.send = options.transport ?? this.pool!;
    if (this.kind === "llama.cpp" || this.kind === "vllm") this.countTokens = (text) => this.tokenize(text);
  }

  /**
   * Tokens of `text` by the server's own tokenizer, without special tokens: llama.cpp's server takes
   * `{"content"}` and answers `{"tokens": [...]}`; vLLM takes `{"model", "prompt"}` and answers `{"count", "tokens"}`.
   */
  private async tokenize(text: string): Promise<number> {
    const url = `${this.baseUrl.replace(/\/v1$/, "")}/tokenize`;
    const body =
      this.kind === "vllm"
        ? {
            model: this.options.model || this.chosenModel || (await this.describe()).name,
            prompt: text,
            add_special_tokens: false,
          }
        : { content: text, add_special: false };
    let response: HttpAnswer;
    try {
      response = await this.send(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...this.headers() },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(LIST_TIMEOUT_MS),
      });
    } catch (error) {
      throw new BackendError("backend_failed", `cannot reach ${url}: ${describeFailure(error)}`, { cause: error });
    }
    if (!ok(response)) throw await errorOf(response, this.source());
    const answer = (await response
      .text()
      .then((text) => JSON.parse(text))
      .catch(() => undefined)) as { count?: unknown; tokens?: unknown } | undefined;
    const count =
      typeof answer?.count === "number"
        ? answer.count
        : Array.isArray(answer?.tokens)
          ? answer.tokens.length
          : undefined;
    if (count === undefined) throw new BackendError("backend_failed", `${url} answered no tokens`);
    return count;
  }

  async describe(): Promise<ModelDescription> {
    const listed = ((await this.getJson(`${this.baseUrl}/models`)) as { data?: ListedModel[] }).data ?? [];
    // LM Studio's richer listing; other servers answer 404, which just means "not LM Studio".
    const rich = await this.lmStudioModels();
    const chosen = this.chooseModel(listed, rich);
    this.chosenModel = chosen.id;
    const details = rich?.find((model) => model.id === chosen.id);
    const parsed = parseModelName(chosen.id);
    return {
      name: chosen.id,
      parameterCount: chosen.meta?.n_params ?? parsed.parameterCount,
      quantization: details?.quantization?.toUpperCase() || parsed.quantization,
      contextLength:
        details?.loaded_context_length ??
        details?.max_context_length ??
        chosen.max_model_len ??
        chosen.meta?.n_ctx_train ??
        0,
    };
  }

  async *generate(request: GenerateRequest): AsyncGenerator<GeneratedPiece, GenerateResult, void> {
    const model = request.model || this.options.model || this.chosenModel || (await this.describe()).name;
    const messages = request.messages.map(({ role, content }) => ({ role, content }));
    // The prefix seam: a trailing assistant message, which LM Studio, llama.cpp server and Ollama continue
    // (no new turn); vLLM does so only when asked with continue_final_message.
    if (request.assistantPrefix) messages.push({ role: "assistant", content: request.assistantPrefix });
    // one JSON answer when the caller takes it whole: no SSE events to write, parse and count one by one
    const whole = request.whole === true && !this.wholeUncounted;
    const body = {
      model,
      messages,
      ...(whole ? { stream: false } : { stream: true, stream_options: { include_usage: true } }),
      max_tokens: request.maxTokens,
      ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
      ...(request.seed !== undefined ? { seed: request.seed } : {}),
      ...(request.assistantPrefix && this.kind === "vllm"
        ? { continue_final_message: true, add_generation_prompt: false }
        : {}),
    };
    const url = `${this.baseUrl}/chat/completions`;
    const state = newStreamState();
    const source: AnswerSource = { baseUrl: this.baseUrl, model };
    const result = (finishReason: GenerateResult["finishReason"], uncounted = state.contentDeltas): GenerateResult => ({
      promptTokens: tokenCount(state.usage?.prompt_tokens) ?? 0,
      // Without a usage report, one content delta per token: LM Studio, llama.cpp and Ollama stream a token
      // per chunk, so the count is exact for them and an estimate for servers that batch. Never above the budget.
      completionTokens: Math.min(tokenCount(state.usage?.completion_tokens) ?? uncounted, request.maxTokens),
      finishReason,
    });

    const http = new AbortController();
    const onAbort = () => http.abort(request.signal.reason);
    if (request.signal.aborted) return result("cancelled");
    request.signal.addEventListener("abort", onAbort, { once: true });
    this.inFlight.add(http);
    let response: HttpAnswer | undefined;
    try {
      response = await this.send(url, {
        method: "POST",
        headers: {
          ...this.headers(),
          "Content-Type": "application/json",
          Accept: whole ? "application/json" : "text/event-stream",
        },
        body: JSON.stringify(body),
        signal: http.signal,
      });
      if (!ok(response)) throw await errorOf(response, source);
      if (response.contentType.includes("application/json")) {
        // The whole answer asked for; or a server that ignored `stream`, or an error with status 200 (LM Studio's
        // unknown paths)
        const text = readEvent({ data: await response.text() }, state, source, "message");
        const counted = tokenCount(state.usage?.completion_tokens);
        // a count past max_tokens: the server ignored it (the text is as it sent it; the count stops at the budget)
        const over = counted !== undefined && counted > request.maxTokens;
        if (whole && (counted === undefined || over)) this.wholeUncounted = true;
        // no count from the server: the text's estimated tokens (a whole answer has no deltas to count)
        const tokens = counted ?? (text === undefined ? 0 : estimateTokens(text));
        if (text !== undefined) yield { text, tokens: Math.max(1, Math.min(tokens, request.maxTokens)) };
        return result(over || state.finishReason === "length" ? "length" : "stop", tokens);
      }
      const events: EventSourceMessage[] = [];
      const parser = createParser({ onEvent: (event) => events.push(event) });
      // A streaming decoder keeps a UTF-8 character whole when TCP splits its bytes across reads.
      const decoder = new TextDecoder();
      for await (const value of response.body) {
        parser.feed(decoder.decode(value, { stream: true }));
        // the deltas of one read go on as one piece (their count in `tokens`): one step of this generator and of its
        // consumer per read, not per delta; a failure inside the stream ends it after the deltas before it: they
        // reach the coordinator first, so that a failover continues after them
        const { text, tokens, over, failure } = piecesOfRead(events.splice(0), state, source, request.maxTokens);
        if (tokens > 0 && !request.signal.aborted) yield { text, tokens };
        if (failure !== undefined) throw failure;
        if (over) return result("length");
        if (state.done) break;
      }
      if (request.signal.aborted) return result("cancelled");
      if (!state.done && state.finishReason === undefined) {
        throw new BackendError("backend_failed", `the stream from ${url} ended before the answer was complete`);
      }
      return result(state.finishReason === "length" ? "length" : "stop");
    } catch (error) {
      // close() aborts requests in flight as well: that is a cancellation too, not a server failure.
      if (request.signal.aborted || (this.closed && http.signal.aborted)) return result("cancelled");
      if (error instanceof BackendError) throw error;
      throw new BackendError("backend_failed", `${url} failed: ${describeFailure(error)}`, { cause: error });
    } finally {
      request.signal.removeEventListener("abort", onAbort);
      this.inFlight.delete(http);
      // A complete answer ([DONE] read): the socket goes back to the pool once the response's end is read. Otherwise
      // (a cancel, a failure, a consumer that stopped early) aborting closes the request, which stops the server.
      if (state.done && !request.signal.aborted) response?.release();
      else http.abort();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const http of this.inFlight) http.abort();
    this.pool?.close();
  }

  private chooseModel(listed: ListedModel[], rich: LmStudioModel[] | undefined): ListedModel {
    const found = listed.map((model) => model.id).join(", ") || "none";
    const wanted = this.options.model;
    if (wanted) {
      // Ollama lists "llama3.1:latest" for what users call "llama3.1".
      const match = listed.find((model) => model.id === wanted || model.id === `${wanted}:latest`);
      if (match) return match;
      throw new BackendError("model_unavailable", `${this.baseUrl} does not serve model "${wanted}" (found: ${found})`);
    }
    const richOf = (id: string) => rich?.find((model) => model.id === id);
    const chat = listed.filter((model) => {
      const type = richOf(model.id)?.type;
      return type ? type !== "embeddings" : !/embed/i.test(model.id);
    });
    const picked = chat.find((model) => richOf(model.id)?.state === "loaded") ?? chat[0];
    if (!picked) throw new BackendError("model_unavailable", `${this.baseUrl} serves no chat model (found: ${found})`);
    return picked;
  }

  private async lmStudioModels(): Promise<LmStudioModel[] | undefined> {
    if (this.kind !== "lmstudio" && this.kind !== "openai-compatible") return undefined;
    const origin = this.baseUrl.replace(/\/v1$/, "");
    try {
      const answer = (await this.getJson(`${origin}/api/v0/models`)) as { data?: LmStudioModel[] };
      return Array.isArray(answer.data) ? answer.data : undefined;
    } catch {
      return undefined;
    }
  }

  private async getJson(url: string): Promise<unknown> {
    let response: HttpAnswer;
    try {
      response = await this.send(url, { headers: this.headers(), signal: AbortSignal.timeout(LIST_TIMEOUT_MS) });
    } catch (error) {
      throw new BackendError("backend_failed", `cannot reach ${url}: ${describeFailure(error)}`, { cause: error });
    }
    if (!ok(response)) throw await errorOf(response, this.source());
    const text = await response.text();
    let body: ServerJson | null;
    try {
      body = JSON.parse(text) as ServerJson | null;
    } catch (error) {
      throw new BackendError("backend_failed", `${url} did not answer JSON`, { cause: error });
    }
    // LM Studio answers unknown paths (a base URL without /v1) with status 200 and an `error`.
    if (body?.error !== undefined) throw serverError(this.source(), response.status, body, text);
    return body;
  }

  private headers(): Record<string, string> {
    return this.options.apiKey ? { Authorization: `Bearer ${this.options.apiKey}` } : {};
  }

  /** Errors outside a chat name the configured model, if any. */
  private source(): AnswerSource {
    return { baseUrl: this.baseUrl, model: this.options.model ?? "" };
  }
}
