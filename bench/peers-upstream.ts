// The peers benchmark's upstream: a tiny OpenAI-compatible server (node:http) that answers every chat completion
// at once with the same 16 tokens, streamed (SSE in OpenAI's chunk format) or as one JSON object with usage.
// Run as its own process (`node bench/peers-upstream.ts`): it prints {"port": N} on stdout and serves until killed,
// so its work shares no event loop with the clients that measure, and its CPU is left out of every figure.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export const UPSTREAM_MODEL = "qwen2.5-7b-instruct";
/** The 16 content pieces of every answer; a client checks that it got exactly their concatenation. */
export const UPSTREAM_TOKENS = [
  "Hello",
  ",",
  " I",
  " am",
  " a",
  " tiny",
  " upstream",
  " that",
  " answers",
  " every",
  " request",
  " with",
  " these",
  " same",
  " sixteen",
  " tokens",
];
export const UPSTREAM_TEXT = UPSTREAM_TOKENS.join("");
const PROMPT_TOKENS = 9;

// Every answer is the same bytes, built once: the upstream's own cost stays as small as it can be.
const created = Math.floor(Date.now() / 1000);
const id = "chatcmpl-peers-bench";
const chunk = (delta: Record<string, string>, finishReason: string | null) =>
  `data: ${JSON.stringify({
    id,
    object: "chat.completion.chunk",
    created,
    model: UPSTREAM_MODEL,
    system_fingerprint: null,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  })}\n\n`;
const usage = {
  prompt_tokens: PROMPT_TOKENS,
  completion_tokens: UPSTREAM_TOKENS.length,
  total_tokens: PROMPT_TOKENS + UPSTREAM_TOKENS.length,
};
const contentEvents = UPSTREAM_TOKENS.map((token, i) =>
  Buffer.from(chunk(i === 0 ? { role: "assistant", content: token } : { content: token }, null)),
);
const finishEvent = Buffer.from(chunk({}, "length"));
const usageChunk = {
  id,
  object: "chat.completion.chunk",
  created,
  model: UPSTREAM_MODEL,
  system_fingerprint: null,
  choices: [],
  usage,
};
const usageEvent = Buffer.from(`data: ${JSON.stringify(usageChunk)}\n\n`);
const doneEvent = Buffer.from("data: [DONE]\n\n");
const completion = Buffer.from(
  JSON.stringify({
    id,
    object: "chat.completion",
    created,
    model: UPSTREAM_MODEL,
    system_fingerprint: null,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: UPSTREAM_TEXT, refusal: null },
        logprobs: null,
        finish_reason: "length",
      },
    ],
    usage,
  }),
);
const models = Buffer.from(
  JSON.stringify({ object: "list", data: [{ id: UPSTREAM_MODEL, object: "model", created, owned_by: "bench" }] }),
);

export function startUpstream(port = 0): Promise<number> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && path === "/v1/models") {
      res.writeHead(200, { "content-type": "application/json", "content-length": models.length });
      res.end(models);
      return;
    }
    if (req.method !== "POST" || path !== "/v1/chat/completions") {
      req.resume();
      res.writeHead(404, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          error: { message: `no route ${req.method} ${path}`, type: "invalid_request_error", code: "unknown_url" },
        }),
      );
      return;
    }
    const parts: Buffer[] = [];
    req.on("data", (part: Buffer) => parts.push(part));
    req.on("end", () => {
      let body: { stream?: boolean; stream_options?: { include_usage?: boolean } };
      try {
        body = JSON.parse(Buffer.concat(parts).toString("utf8")) as typeof body;
      } catch {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: "the body is not JSON", type: "invalid_request_error" } }));
        return;
      }
      if (!body.stream) {
        res.writeHead(200, { "content-type": "application/json", "content-length": completion.length });
        res.end(completion);
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      // one write per event, as a server generating tokens would; all of them at once (no generation time)
      for (const event of contentEvents) res.write(event);
      res.write(finishEvent);
      if (body.stream_options?.include_usage) res.write(usageEvent);
      res.end(doneEvent);
    });
  });
  // clients keep their connections between the benchmark's phases; never close one under them
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  return new Promise((resolve) =>
    server.listen(port, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = await startUpstream(Number(process.env.PORT ?? 0));
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  // stop with the benchmark that started it (like bench/orphan-guard.ts, without its import)
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && process.exit(0), 500).unref();
}
