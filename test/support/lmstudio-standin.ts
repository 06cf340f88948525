// A real HTTP server on 127.0.0.1 speaking LM Studio's OpenAI-compatible wire format, standing in for LM Studio in
// tests.
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** One entry of LM Studio's `GET /api/v0/models`. */
export interface StandinModel {
  id: string;
  object?: "model";
  type: "llm" | "vlm" | "embeddings";
  publisher: string;
  arch: string;
  compatibility_type: "gguf" | "mlx";
  quantization: string;
  state: "loaded" | "not-loaded";
  max_context_length: number;
  /** Present for loaded models. */
  loaded_context_length?: number;
}

export interface StandinBehaviour {
  models: StandinModel[];
  /** Serve `GET /api/v0/models` (LM Studio's richer list); off = a plain OpenAI-compatible server. */
  apiV0: boolean;
  /** Text pieces of every answer, one SSE chunk each. */
  tokens: string[];
  /** Pause before each piece. */
  tokenDelayMs: number;
  /** Extra pause before the first piece, as prompt processing takes. */
  firstTokenDelayMs: number;
  /** Write the SSE stream this many bytes at a time, pausing between writes (0 = whole events). */
  writeBytesAtATime: number;
  /** A ": keep-alive" comment line before every event. */
  keepAliveComments: boolean;
  /**
   * Honour `stream_options.include_usage` with a usage chunk, and put usage in a whole answer; off = a server that
   * never reports usage.
   */
  usage: boolean;
  /** Answer an unknown model id with LM Studio's 404; off = LM Studio's habit of serving whatever is loaded. */
  validateModel: boolean;
  /** After this many pieces, send an error event inside the 200 stream and end it. */
  streamErrorAfter: number | undefined;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: any;
  /** The client went away before the response was complete. */
  disconnected: boolean;
  /** The client's port: requests on one kept-alive connection share it. */
  clientPort: number | undefined;
}

export interface LmStudioStandin {
  /** e.g. http://127.0.0.1:53211/v1 */
  baseUrl: string;
  requests: RecordedRequest[];
  behaviour: StandinBehaviour;
  /** Resolves with the first request whose client disconnects early. */
  nextDisconnect(): Promise<RecordedRequest>;
  close(): Promise<void>;
}

export const STANDIN_MODELS: StandinModel[] = [
  {
    id: "text-embedding-nomic-embed-text-v1.5",
    type: "embeddings",
    publisher: "nomic-ai",
    arch: "nomic-bert",
    compatibility_type: "gguf",
    quantization: "Q4_K_M",
    state: "not-loaded",
    max_context_length: 2048,
  },
  {
    id: "qwen2.5-7b-instruct",
    type: "llm",
    publisher: "lmstudio-community",
    arch: "qwen2",
    compatibility_type: "gguf",
    quantization: "Q4_K_M",
    state: "loaded",
    max_context_length: 32768,
    loaded_context_length: 4096,
  },
  {
    id: "meta-llama-3.1-8b-instruct",
    type: "llm",
    publisher: "lmstudio-community",
    arch: "llama",
    compatibility_type: "gguf",
    quantization: "Q8_0",
    state: "not-loaded",
    max_context_length: 131072,
  },
];

/** The stand-in's prompt token count: a quarter of the characters, rounded up, per message. */
export function standinPromptTokens(messages: { content: string }[]): number {
  return messages.reduce((sum, message) => sum + 4 + Math.ceil(message.content.length / 4), 0);
}

export async function startLmStudioStandin(behaviour: Partial<StandinBehaviour> = {}): Promise<LmStudioStandin> {
  const state: StandinBehaviour = {
    models: STANDIN_MODELS,
    apiV0: true,
    tokens: ["Hello", ",", " world", "!"],
    tokenDelayMs: 0,
    firstTokenDelayMs: 0,
    writeBytesAtATime: 0,
    keepAliveComments: false,
    usage: true,
    validateModel: true,
    streamErrorAfter: undefined,
    ...behaviour,
  };
  const requests: RecordedRequest[] = [];
  const disconnectWaiters: ((request: RecordedRequest) => void)[] = [];

  const server = createServer(async (req, res) => {
    const record: RecordedRequest = {
      method: req.method ?? "",
      path: req.url ?? "",
      headers: req.headers,
      body: undefined,
      disconnected: false,
      clientPort: req.socket.remotePort,
    };
    requests.push(record);
    res.on("error", () => {}); // writes after the client has gone are expected, not failures
    res.on("close", () => {
      if (res.writableFinished) return;
      record.disconnected = true;
      for (const wake of disconnectWaiters.splice(0)) wake(record);
    });
    try {
      const raw = await readBody(req);
      record.body = raw ? JSON.parse(raw) : undefined;
      await route(state, record, res);
    } catch (error) {
      if (!res.headersSent) sendJson(res, 500, { error: { message: String(error) } });
      else res.destroy();
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    behaviour: state,
    nextDisconnect: () => new Promise((resolve) => disconnectWaiters.push(resolve)),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

async function route(state: StandinBehaviour, request: RecordedRequest, res: ServerResponse): Promise<void> {
  const { method, path } = request;
  if (method === "GET" && path === "/v1/models") {
    const data = state.models.map((model) => ({ id: model.id, object: "model", owned_by: "organization_owner" }));
    return sendJson(res, 200, { data, object: "list" });
  }
  if (method === "GET" && path === "/api/v0/models" && state.apiV0) {
    return sendJson(res, 200, { object: "list", data: state.models.map((model) => ({ object: "model", ...model })) });
  }
  if (method === "POST" && path === "/v1/chat/completions") return chatCompletion(state, request.body, res);
  sendJson(res, 200, { error: `Unexpected endpoint or method. (${method} ${path})` });
}

async function chatCompletion(state: StandinBehaviour, body: any, res: ServerResponse): Promise<void> {
  const model = state.models.find((candidate) => candidate.id === body.model);
  if (!model && state.validateModel) {
    const names = state.models.map((candidate) => candidate.id).join("\n");
    return sendJson(res, 404, {
      error: {
        message: `Model "${body.model}" not found. Please specify a valid model.\n\nYour models:\n\n${names}`,
        type: "invalid_request_error",
        param: "model",
        code: "model_not_found",
      },
    });
  }
  const served = model ?? state.models.find((candidate) => candidate.state === "loaded") ?? state.models[0]!;
  const contextLength = served.loaded_context_length ?? served.max_context_length;
  const promptTokens = standinPromptTokens(body.messages ?? []);
  if (promptTokens > contextLength) {
    // The client must also cope with `error` as a plain string, so this error uses that shape.
    return sendJson(res, 400, {
      error:
        `Trying to keep the first ${promptTokens} tokens when context the overflows. However, the model is loaded ` +
        `with context length of only ${contextLength} tokens, which is not enough. Try to load the model with a ` +
        `larger context length, or provide a shorter input`,
    });
  }
  const maxTokens = typeof body.max_tokens === "number" && body.max_tokens >= 0 ? body.max_tokens : Infinity;
  const pieces = state.tokens.slice(0, maxTokens);
  const finishReason = pieces.length < state.tokens.length ? "length" : "stop";
  const usage = {
    prompt_tokens: promptTokens,
    completion_tokens: pieces.length,
    total_tokens: promptTokens + pieces.length,
  };
  const id = `chatcmpl-${Math.random().toString(36).slice(2, 23)}`;
  const created = Math.floor(Date.now() / 1000);
  const head = { id, created, model: served.id, system_fingerprint: served.id };

  if (!body.stream) {
    for (let i = 0; i < pieces.length; i++) await sleep(state.tokenDelayMs);
    const message = { role: "assistant", content: pieces.join("") };
    return sendJson(res, 200, {
      ...head,
      object: "chat.completion",
      choices: [{ index: 0, logprobs: null, finish_reason: finishReason, message }],
      ...(state.usage ? { usage } : {}),
      stats: {},
    });
  }

  res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", Connection: "keep-alive" });
  res.socket?.setNoDelay(true);
  const send = async (payload: string) => {
    const text = `${state.keepAliveComments ? ": keep-alive\n\n" : ""}data: ${payload}\n\n`;
    await write(res, Buffer.from(text, "utf8"), state.writeBytesAtATime);
  };
  const chunk = (delta: object, finish: string | null) =>
    JSON.stringify({
      ...head,
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    });
  for (const [index, piece] of pieces.entries()) {
    if (state.streamErrorAfter === index) {
      await send(
        JSON.stringify({ error: { message: "The model has crashed without additional information. (Exit code: 6)" } }),
      );
      res.end();
      return;
    }
    await sleep(state.tokenDelayMs + (index === 0 ? state.firstTokenDelayMs : 0));
    if (res.destroyed) return;
    await send(chunk({ role: "assistant", content: piece }, null));
  }
  await send(chunk({}, finishReason));
  if (state.usage && body.stream_options?.include_usage)
    await send(JSON.stringify({ ...head, object: "chat.completion.chunk", choices: [], usage }));
  await send("[DONE]");
  res.end();
}

async function write(res: ServerResponse, bytes: Buffer, bytesAtATime: number): Promise<void> {
  if (bytesAtATime <= 0) {
    res.write(bytes);
    return;
  }
  for (let offset = 0; offset < bytes.length && !res.destroyed; offset += bytesAtATime) {
    res.write(bytes.subarray(offset, offset + bytesAtATime));
    // A pause per write, so that the pieces leave as separate TCP segments instead of being coalesced.
    await sleep(1);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8" });
  res.end(JSON.stringify(body, null, 2));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
