// A real HTTP server on 127.0.0.1 speaking OpenRouter's OpenAI-compatible chat completions wire format (answers,
// rate limits, server errors, errors inside a 200), standing in for OpenRouter in tests and the classifier bench.
import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface OpenRouterStandinBehaviour {
  /** The assistant message's content, e.g. `{"difficulty":"COMPLEX"}`; a function sees the request body. */
  content: string | ((body: any) => string);
  /** Pause before answering. */
  delayMs: number;
  /** Answer with this status and OpenRouter's error shape instead (429, 500, 502, …). */
  status: number | undefined;
  /** Answer 200 with OpenRouter's error shape: an error after generation started. */
  errorInBody: boolean;
  /** Answer 200 with this raw body (e.g. an HTML page from a proxy). */
  rawBody: string | undefined;
}

export interface RecordedOpenRouterRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: any;
  /** The client went away before the answer was sent. */
  disconnected: boolean;
}

export interface OpenRouterStandin {
  /** e.g. http://127.0.0.1:53211/api/v1, as OPENROUTER_URL. */
  url: string;
  requests: RecordedOpenRouterRequest[];
  behaviour: OpenRouterStandinBehaviour;
  close(): Promise<void>;
}

const errorMessages: Record<number, string> = {
  400: "Bad Request",
  401: "No auth credentials found",
  402: "Insufficient credits",
  429:
    "Rate limit exceeded: limit_rpm/openai/gpt-4o-mini. High demand for openai/gpt-4o-mini on OpenRouter - " +
    "limited to 20 requests per minute.",
  500: "Internal Server Error",
  502: "Provider returned error",
  503: "No available model provider that meets your routing requirements",
};

export async function startOpenRouterStandin(
  behaviour: Partial<OpenRouterStandinBehaviour> = {},
): Promise<OpenRouterStandin> {
  const state: OpenRouterStandinBehaviour = {
    content: '{"difficulty":"COMPLEX"}',
    delayMs: 0,
    status: undefined,
    errorInBody: false,
    rawBody: undefined,
    ...behaviour,
  };
  const requests: RecordedOpenRouterRequest[] = [];
  let generation = 0;
  const server = createServer(async (req, res) => {
    const record: RecordedOpenRouterRequest = {
      method: req.method ?? "",
      path: req.url ?? "",
      headers: req.headers,
      body: undefined,
      disconnected: false,
    };
    requests.push(record);
    res.on("error", () => {}); // writes after the client left are expected
    res.on("close", () => {
      if (!res.writableFinished) record.disconnected = true;
    });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    try {
      record.body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return sendJson(res, 400, { error: { code: 400, message: "Invalid JSON in request body" } });
    }
    if (state.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, state.delayMs));
    if (res.destroyed) return;
    if (req.method !== "POST" || req.url !== "/api/v1/chat/completions") {
      return sendJson(res, 404, { error: { code: 404, message: "Not Found" } });
    }
    if (req.headers.authorization === undefined)
      return sendJson(res, 401, { error: { code: 401, message: errorMessages[401] } });
    if (state.status !== undefined) {
      const headers: Record<string, string> = state.status === 429 ? { "Retry-After": "30" } : {};
      const message = errorMessages[state.status] ?? "Error";
      return sendJson(
        res,
        state.status,
        { error: { code: state.status, message, metadata: { provider_name: "OpenAI" } } },
        headers,
      );
    }
    if (state.rawBody !== undefined) {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      return res.end(state.rawBody);
    }
    const id = `gen-${Math.floor(Date.now() / 1000)}-${(++generation).toString(36).padStart(8, "0")}`;
    if (state.errorInBody) {
      return sendJson(res, 200, {
        id,
        error: { code: 502, message: "Provider returned error", metadata: { provider_name: "OpenAI" } },
      });
    }
    const content = typeof state.content === "function" ? state.content(record.body) : state.content;
    sendJson(res, 200, {
      id,
      provider: "OpenAI",
      model: record.body.model,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      choices: [
        {
          logprobs: null,
          finish_reason: "stop",
          native_finish_reason: "stop",
          index: 0,
          message: { role: "assistant", content, refusal: null, reasoning: null },
        },
      ],
      usage: { prompt_tokens: 420, completion_tokens: 8, total_tokens: 428 },
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/v1`,
    requests,
    behaviour: state,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}
