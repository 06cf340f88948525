// The OpenAI-compatible backend against a real HTTP stand-in for LM Studio: describe, streaming, usage, abort, errors;
// token counts against stand-ins for llama.cpp's server and vLLM's /tokenize.
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import OpenAI from "openai";
import { afterEach, describe, expect, it } from "vitest";
import {
  STANDIN_MODELS,
  standinPromptTokens,
  startLmStudioStandin,
  type LmStudioStandin,
  type StandinBehaviour,
  type StandinModel,
} from "../../test/support/lmstudio-standin.ts";
import type { GeneratedPiece, GenerateRequest, GenerateResult } from "./backend.ts";
import { createOpenAiCompatibleBackend, type OpenAiCompatibleOptions } from "./openai-compatible.ts";
import { createHttpTransport, type HttpTransport } from "./http-client.ts";
import { measureTokenizerRates } from "../tokenizer-rates.ts";
import { estimateTokens } from "../../common/classify-prompt.ts";

const [embedding, qwen] = STANDIN_MODELS as [StandinModel, StandinModel, StandinModel];
const llamaQ8: StandinModel = { ...STANDIN_MODELS[2]!, id: "meta-llama-3.1-8b-instruct@q8_0" };
// An embedding model listed first and the loaded chat model last: choosing has to look past both ends.
const MODELS = [embedding, llamaQ8, qwen];

let standin: LmStudioStandin | undefined;
afterEach(async () => {
  await standin?.close();
  standin = undefined;
});

async function setup(behaviour: Partial<StandinBehaviour> = {}, options: Partial<OpenAiCompatibleOptions> = {}) {
  standin = await startLmStudioStandin({ models: MODELS, ...behaviour });
  const backend = createOpenAiCompatibleBackend({
    baseUrl: standin.baseUrl,
    kind: "lmstudio",
    model: qwen.id,
    ...options,
  });
  return { standin, backend };
}

function request(overrides: Partial<GenerateRequest> = {}): GenerateRequest {
  return {
    messages: [{ role: "user", content: "Hi there" }],
    maxTokens: 100,
    signal: new AbortController().signal,
    ...overrides,
  };
}

/** A transport whose answers' bodies pass through `map`, read by read (their text too). */
function mappingBodies(map: (chunk: Buffer) => Buffer): HttpTransport {
  const http = createHttpTransport();
  return async (url, call) => {
    const answer = await http(url, call);
    const source = answer.body;
    const body = (async function* () {
      for await (const chunk of source) yield map(chunk);
    })();
    const text = async () => {
      const parts: Buffer[] = [];
      for await (const part of body) parts.push(part);
      return Buffer.concat(parts).toString("utf8");
    };
    return { ...answer, body, text };
  };
}

async function collect(
  stream: AsyncGenerator<GeneratedPiece, GenerateResult, void>,
  onPiece?: (count: number, tokens: number) => void,
) {
  const pieces: string[] = [];
  let tokens = 0;
  for (;;) {
    const next = await stream.next();
    if (next.done) return { pieces, tokens, result: next.value };
    pieces.push(next.value.text);
    tokens += next.value.tokens;
    onPiece?.(pieces.length, tokens);
  }
}

describe("describe()", () => {
  it("uses LM Studio's /api/v0 listing: the loaded chat model, its quantization and loaded context", async () => {
    const { standin, backend } = await setup({}, { model: undefined });
    expect(await backend.describe()).toEqual({
      name: qwen.id,
      parameterCount: 7e9,
      quantization: "Q4_K_M",
      contextLength: 4096,
    });
    expect(standin.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /v1/models", "GET /api/v0/models"]);
  });

  it("without /api/v0 takes the first chat model and reads the rest from its name", async () => {
    const { backend } = await setup({ apiV0: false }, { model: undefined });
    expect(await backend.describe()).toEqual({
      name: llamaQ8.id,
      parameterCount: 8e9,
      quantization: "Q8_0",
      contextLength: 0,
    });
  });

  it("serves the configured model, and names what it found when that model is missing", async () => {
    const { backend } = await setup({}, { model: llamaQ8.id });
    expect(await backend.describe()).toMatchObject({ name: llamaQ8.id, quantization: "Q8_0", contextLength: 131072 });
    const missing = createOpenAiCompatibleBackend({ baseUrl: standin!.baseUrl, model: "mistral-7b" });
    await expect(missing.describe()).rejects.toMatchObject({
      reason: "model_unavailable",
      message: expect.stringMatching(/"mistral-7b".*found: text-embedding-nomic-embed-text-v1\.5, meta-llama/),
    });
  });

  it("fails with model_unavailable when the server has no chat model", async () => {
    standin = await startLmStudioStandin({ models: [embedding] });
    const backend = createOpenAiCompatibleBackend({ baseUrl: standin.baseUrl });
    await expect(backend.describe()).rejects.toMatchObject({ reason: "model_unavailable", message: /no chat model/ });
  });

  it("fails with backend_failed when nothing listens, or the base URL lacks /v1", async () => {
    const port = await freePort();
    const down = createOpenAiCompatibleBackend({ baseUrl: `http://127.0.0.1:${port}/v1` });
    await expect(down.describe()).rejects.toMatchObject({
      reason: "backend_failed",
      message: /cannot reach.*ECONNREFUSED/,
    });
    const { standin } = await setup();
    const noV1 = createOpenAiCompatibleBackend({ baseUrl: standin.baseUrl.replace(/\/v1$/, "") });
    await expect(noV1.describe()).rejects.toMatchObject({ reason: "backend_failed", message: /Unexpected endpoint/ });
  });
});

describe("generate()", () => {
  it("streams the pieces in order and returns the server's usage", async () => {
    const tokens = ["The", " sky", " is", " blue", "."];
    const { standin, backend } = await setup({ tokens, tokenDelayMs: 5 }, { apiKey: "lm-studio" });
    const messages = [
      { role: "system" as const, content: "Be brief." },
      { role: "user" as const, content: "What colour is the sky?" },
    ];
    const { pieces, result } = await collect(
      backend.generate(request({ messages, maxTokens: 64, temperature: 0.2, seed: 42 })),
    );
    expect(pieces).toEqual(tokens);
    expect(result).toEqual({ promptTokens: standinPromptTokens(messages), completionTokens: 5, finishReason: "stop" });
    const sent = standin.requests.at(-1)!;
    expect(sent.headers.authorization).toBe("Bearer lm-studio");
    expect(sent.body).toEqual({
      model: qwen.id,
      messages,
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 64,
      temperature: 0.2,
      seed: 42,
    });
  });

  it("reports finishReason length when max tokens cut the answer", async () => {
    const { backend } = await setup({ tokens: ["a", "b", "c", "d"] });
    const { pieces, result } = await collect(backend.generate(request({ maxTokens: 2 })));
    expect(pieces).toEqual(["a", "b"]);
    expect(result).toMatchObject({ completionTokens: 2, finishReason: "length" });
  });

  it("never counts past max tokens, even from a server that ignores max_tokens", async () => {
    const { standin } = await setup({ tokens: ["a", "b", "c", "d", "e"] });
    // the server sees no max_tokens: it streams all five and reports five in its usage
    const http = createHttpTransport();
    const ignoring: HttpTransport = (url, call) => {
      const { max_tokens: _, ...body } = JSON.parse(String(call.body)) as Record<string, unknown>;
      return http(url, { ...call, body: JSON.stringify(body) });
    };
    for (const usage of [true, false]) {
      standin.behaviour.usage = usage;
      const backend = createOpenAiCompatibleBackend({ baseUrl: standin.baseUrl, model: qwen.id, transport: ignoring });
      const { pieces, tokens, result } = await collect(backend.generate(request({ maxTokens: 3 })));
      expect(pieces).toEqual(["a", "b", "c"]);
      expect(tokens).toBe(3);
      expect(result).toMatchObject({ completionTokens: 3, finishReason: "length" });
    }
  });

  it("counts content deltas when the server reports no usage", async () => {
    const { backend } = await setup({ usage: false, tokens: ["x", "y", "z"] });
    expect((await collect(backend.generate(request()))).result).toEqual({
      promptTokens: 0,
      completionTokens: 3,
      finishReason: "stop",
    });
  });

  it("asks for one JSON answer when the caller takes it whole, and reads the server's usage", async () => {
    const tokens = ["The", " sky", " is", " blue", "."];
    const { standin, backend } = await setup({ tokens });
    const {
      pieces,
      tokens: counted,
      result,
    } = await collect(backend.generate(request({ maxTokens: 64, whole: true })));
    expect(pieces).toEqual(["The sky is blue."]);
    expect(counted).toBe(5);
    expect(result).toMatchObject({ completionTokens: 5, finishReason: "stop" });
    const sent = standin.requests.at(-1)!;
    expect(sent.body).toMatchObject({ stream: false, max_tokens: 64 });
    expect(sent.body).not.toHaveProperty("stream_options");
    expect(sent.headers.accept).toBe("application/json");
    // cut by max_tokens: the server says "length"
    expect((await collect(backend.generate(request({ maxTokens: 2, whole: true })))).result).toMatchObject({
      completionTokens: 2,
      finishReason: "length",
    });
  });

  it("streams whole answers once the server's count of one could not be relied on", async () => {
    // no usage in the whole answer: its tokens are estimated, and later whole answers are streamed and counted
    const { standin, backend } = await setup({ usage: false, tokens: ["one", " two", " three", " four"] });
    const first = await collect(backend.generate(request({ whole: true })));
    expect(first.pieces).toEqual(["one two three four"]);
    expect(first.result.completionTokens).toBe(estimateTokens("one two three four"));
    expect(standin.requests.at(-1)!.body.stream).toBe(false);
    const second = await collect(backend.generate(request({ whole: true })));
    expect(second.result.completionTokens).toBe(4);
    expect(standin.requests.at(-1)!.body.stream).toBe(true);
  });

  it("counts a whole answer past max_tokens up to it, then streams (a server that ignores max_tokens)", async () => {
    const { standin: ignored } = await setup({ tokens: ["a", "b", "c", "d", "e"] });
    const http = createHttpTransport();
    const ignoring: HttpTransport = (url, call) => {
      const { max_tokens: _, ...body } = JSON.parse(String(call.body)) as Record<string, unknown>;
      return http(url, { ...call, body: JSON.stringify(body) });
    };
    const over = createOpenAiCompatibleBackend({ baseUrl: ignored.baseUrl, model: qwen.id, transport: ignoring });
    expect((await collect(over.generate(request({ maxTokens: 3, whole: true })))).result).toMatchObject({
      completionTokens: 3,
      finishReason: "length",
    });
    const streamed = await collect(over.generate(request({ maxTokens: 3, whole: true })));
    expect(streamed.pieces).toEqual(["a", "b", "c"]);
    expect(ignored.requests.at(-1)!.body.stream).toBe(true);
  });

  it("ignores usage counts that are not whole numbers: the deltas count, or a whole answer's estimate", async () => {
    const tokens = ["one", " two", " three"];
    const { standin } = await setup({ tokens });
    // the server's usage as a broken server might send it: a string and a negative count
    const broken = (text: string) =>
      text
        .replace(/"prompt_tokens": ?(\d+)/g, '"prompt_tokens":"$1"')
        .replace(/"completion_tokens": ?\d+/g, '"completion_tokens":-3');
    const breaking = mappingBodies((chunk) => Buffer.from(broken(chunk.toString("utf8"))));
    const backend = createOpenAiCompatibleBackend({ baseUrl: standin.baseUrl, model: qwen.id, transport: breaking });
    const whole = await collect(backend.generate(request({ whole: true })));
    expect(whole.result).toEqual({
      promptTokens: 0,
      completionTokens: estimateTokens("one two three"),
      finishReason: "stop",
    });
    const streamed = await collect(backend.generate(request({ whole: true })));
    expect(standin.requests.at(-1)!.body.stream).toBe(true);
    expect(streamed.result).toEqual({ promptTokens: 0, completionTokens: 3, finishReason: "stop" });
  });

  it("sends the assistant prefix as a trailing assistant message (and asks vLLM to continue it)", async () => {
    const { standin, backend } = await setup();
    await collect(backend.generate(request({ assistantPrefix: "The answer is" })));
    expect(standin.requests.at(-1)!.body.messages.at(-1)).toEqual({ role: "assistant", content: "The answer is" });
    expect(standin.requests.at(-1)!.body).not.toHaveProperty("continue_final_message");
    const vllm = createOpenAiCompatibleBackend({ baseUrl: standin.baseUrl, kind: "vllm", model: qwen.id });
    await collect(vllm.generate(request({ assistantPrefix: "So" })));
    expect(standin.requests.at(-1)!.body).toMatchObject({ continue_final_message: true, add_generation_prompt: false });
  });

  it("sends answer after answer on one kept-alive connection; a cancelled one closes its own", async () => {
    const { standin, backend } = await setup({ tokens: ["a", "b"] });
    for (let i = 0; i < 6; i++) expect((await collect(backend.generate(request()))).pieces).toEqual(["a", "b"]);
    const ports = standin.requests.filter((r) => r.path === "/v1/chat/completions").map((r) => r.clientPort);
    expect(ports).toHaveLength(6);
    // the answer returns at [DONE]; the stand-in's end of the response follows, so the next request may find that
    // socket not yet back in the pool and open a second one, but never a new connection per request
    expect(new Set(ports).size).toBeLessThanOrEqual(2);
    // a consumer that stops early: that request's socket is closed, never handed to the next answer
    const disconnect = standin.nextDisconnect();
    standin.behaviour.tokens = Array.from({ length: 200 }, () => " x");
    standin.behaviour.tokenDelayMs = 20;
    for await (const _ of backend.generate(request())) break;
    await disconnect;
    standin.behaviour.tokens = ["c"];
    standin.behaviour.tokenDelayMs = 0;
    expect((await collect(backend.generate(request()))).pieces).toEqual(["c"]);
    const [cancelled, last] = standin.requests.slice(-2);
    expect(cancelled!.disconnected).toBe(true);
    expect(last!.clientPort).not.toBe(cancelled!.clientPort);
    await backend.close();
  });

  it("reassembles SSE events and UTF-8 characters split across TCP chunks", async () => {
    const tokens = ["Grüße", " 🌍", " ünd", " 日本"];
    // Three bytes a write splits every event, and every 4-byte emoji, across reads.
    const { standin } = await setup({ tokens, writeBytesAtATime: 3, keepAliveComments: true });
    let chunks = 0;
    const counting = mappingBodies((chunk) => {
      chunks++;
      return chunk;
    });
    const split = createOpenAiCompatibleBackend({ baseUrl: standin.baseUrl, model: qwen.id, transport: counting });
    const { pieces, result } = await collect(split.generate(request()));
    expect(pieces).toEqual(tokens);
    expect(result).toMatchObject({ completionTokens: 4, finishReason: "stop" });
    expect(chunks).toBeGreaterThan(100); // the reads really were fragments, not whole events
  });

  it("aborting stops at once and closes the HTTP request, which the server sees", async () => {
    // at once: three pieces and three tokens, not the rest of the stream (how fast is bench/'s business)
    const { standin, backend } = await setup({
      tokens: Array.from({ length: 200 }, (_, i) => ` t${i}`),
      tokenDelayMs: 20,
    });
    const controller = new AbortController();
    const disconnect = standin.nextDisconnect();
    const { pieces, result } = await collect(backend.generate(request({ signal: controller.signal })), (count) => {
      if (count === 3) controller.abort();
    });
    expect(pieces).toHaveLength(3);
    expect(result).toEqual({ promptTokens: 0, completionTokens: 3, finishReason: "cancelled" });
    const seen = await disconnect;
    expect(seen.path).toBe("/v1/chat/completions");
    expect(seen.disconnected).toBe(true);
  });

  it("a consumer that stops iterating also closes the request", async () => {
    const { standin, backend } = await setup({ tokens: Array.from({ length: 200 }, () => " x"), tokenDelayMs: 20 });
    const disconnect = standin.nextDisconnect();
    for await (const piece of backend.generate(request())) {
      expect(piece).toEqual({ text: " x", tokens: 1 });
      break;
    }
    expect((await disconnect).disconnected).toBe(true);
  });

  it("close() cancels generations in flight", async () => {
    const { standin, backend } = await setup({ tokens: Array.from({ length: 200 }, () => " x"), tokenDelayMs: 20 });
    const disconnect = standin.nextDisconnect();
    const { result } = await collect(backend.generate(request()), (count) => count === 2 && void backend.close());
    expect(result).toMatchObject({ completionTokens: 2, finishReason: "cancelled" });
    expect((await disconnect).disconnected).toBe(true);
  });

  it("maps HTTP errors: unknown model, context too long, failures inside the stream", async () => {
    const { backend } = await setup({ tokens: ["one", " two", " three"], streamErrorAfter: 2 });
    await expect(collect(backend.generate(request({ model: "no-such-model" })))).rejects.toMatchObject({
      name: "BackendError",
      reason: "model_unavailable",
      message: expect.stringContaining('Model "no-such-model" not found'),
    });
    const long = request({ messages: [{ role: "user", content: "word ".repeat(5000) }] });
    await expect(collect(backend.generate(long))).rejects.toMatchObject({
      reason: "context_too_long",
      message: expect.stringContaining("context length of only 4096 tokens"),
    });
    // the two deltas before the failure reach the consumer first (one piece when they arrive in one read)
    let tokens = 0;
    await expect(collect(backend.generate(request()), (_, seen) => (tokens = seen))).rejects.toMatchObject({
      reason: "backend_failed",
      message: expect.stringContaining("The model has crashed"),
    });
    expect(tokens).toBe(2);
  });

  it("fails with backend_failed when the server is gone", async () => {
    const port = await freePort();
    const backend = createOpenAiCompatibleBackend({ baseUrl: `http://127.0.0.1:${port}/v1`, model: "m" });
    await expect(collect(backend.generate(request()))).rejects.toMatchObject({
      reason: "backend_failed",
      message: /ECONNREFUSED/,
    });
  });
});

describe("the LM Studio stand-in", () => {
  it("speaks a wire format the official openai SDK reads, streaming and not", async () => {
    standin = await startLmStudioStandin({ tokens: ["Hello", " there"] });
    const client = new OpenAI({ baseURL: standin.baseUrl, apiKey: "lm-studio" });
    expect((await client.models.list()).data.map((model) => model.id)).toContain(qwen.id);
    const whole = await client.chat.completions.create({ model: qwen.id, messages: [{ role: "user", content: "Hi" }] });
    expect(whole.choices[0]?.message.content).toBe("Hello there");
    expect(whole.usage?.completion_tokens).toBe(2);
    const stream = await client.chat.completions.create({
      model: qwen.id,
      messages: [{ role: "user", content: "Hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const deltas: string[] = [];
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      deltas.push(chunk.choices[0]?.delta.content ?? "");
      usage ??= chunk.usage;
    }
    expect(deltas.join("")).toBe("Hello there");
    expect(usage?.completion_tokens).toBe(2);
  });
});

/** A port with nothing listening on it. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("countTokens()", () => {
  /** `POST /tokenize` as llama.cpp's server and vLLM answer it (one token per 3 characters, a made-up tokenizer). */
  async function tokenizeServer(kind: "llama.cpp" | "vllm") {
    const bodies: unknown[] = [];
    const server = createHttpServer((req, res) => {
      let raw = "";
      req.on("data", (chunk: Buffer) => (raw += chunk.toString()));
      req.on("end", () => {
        if (req.method !== "POST" || req.url !== "/tokenize") {
          res
            .writeHead(404, { "content-type": "application/json" })
            .end(JSON.stringify({ error: { code: 404, message: "File Not Found" } }));
          return;
        }
        const body = JSON.parse(raw) as { content?: string; prompt?: string };
        bodies.push(body);
        const tokens = Array.from(
          { length: Math.ceil((body.content ?? body.prompt ?? "").length / 3) },
          (_, i) => 1000 + i,
        );
        const answer = kind === "vllm" ? { count: tokens.length, max_model_len: 8192, tokens } : { tokens };
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    return {
      baseUrl: `http://127.0.0.1:${port}/v1`,
      bodies,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  it("asks llama.cpp's server and vLLM for their token counts, each in its own wire format", async () => {
    for (const kind of ["llama.cpp", "vllm"] as const) {
      const server = await tokenizeServer(kind);
      try {
        const backend = createOpenAiCompatibleBackend({ baseUrl: server.baseUrl, kind, model: "qwen2.5-7b-instruct" });
        expect(await backend.countTokens!("twelve chars")).toBe(4);
        expect(server.bodies[0]).toEqual(
          kind === "vllm"
            ? { model: "qwen2.5-7b-instruct", prompt: "twelve chars", add_special_tokens: false }
            : { content: "twelve chars", add_special: false },
        );
        const rates = await measureTokenizerRates(backend);
        expect(rates?.asciiCharsPerToken).toBeCloseTo(3, 0);
      } finally {
        await server.close();
      }
    }
  });

  it(
    "is absent for servers without a tokenizer endpoint (LM Studio, Ollama), so the coordinator " + "estimates",
    async () => {
      for (const kind of ["lmstudio", "ollama", "openai-compatible"] as const) {
        expect(createOpenAiCompatibleBackend({ baseUrl: "http://127.0.0.1:1/v1", kind }).countTokens).toBeUndefined();
      }
    },
  );
});
