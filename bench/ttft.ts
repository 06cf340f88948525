// Time to first token as a client sees it: an OpenAI-compatible SSE client (fetch + eventsource-parser) and
// a gRPC InferenceService.Chat client (connect-es), at a given number of concurrent streams.
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createParser } from "eventsource-parser";
import { Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { ascending } from "./stats.ts";

/** One request to its end; resolves with the ms from sending it to its first token. */
export type TimedRequest = () => Promise<number>;

export interface TtftPlan {
  concurrency: number;
  /** Measured requests in all (each concurrent loop runs its share one after another). */
  requests: number;
  /** Unmeasured requests first: JIT, connection pools, the node's first task. */
  warmup: number;
  /** No new request starts after this long (warm-up and measurement each), so a busy machine cannot stretch the run. */
  maxMs?: number;
}

export interface TtftResult {
  /** TTFT of every measured request, ascending. */
  samples: number[];
  /** Measured requests per second (all loops together). */
  rate: number;
}

export async function measureTtft(request: TimedRequest, plan: TtftPlan): Promise<TtftResult> {
  const loops = (count: number, record: (ms: number) => void) => {
    let started = 0;
    const until = performance.now() + (plan.maxMs ?? Infinity);
    return Promise.all(
      Array.from({ length: plan.concurrency }, async () => {
        while (started++ < count && performance.now() < until) record(await request());
      }),
    );
  };
  await loops(plan.warmup, () => {});
  const samples: number[] = [];
  const started = performance.now();
  await loops(plan.requests, (ms) => samples.push(ms));
  return { samples: ascending(samples), rate: samples.length / ((performance.now() - started) / 1000) };
}

/**
 * POST {baseUrl}/chat/completions with stream: true and the key as a bearer token, as any OpenAI SDK would;
 * TTFT = first content delta.
 */
export function sseChat(baseUrl: string, model: string, apiKey: string, maxTokens = 16): TimedRequest {
  const url = `${baseUrl.replace(/\/+$/, "")}/chat/completions`;
  const body = JSON.stringify({
    model,
    stream: true,
    max_tokens: maxTokens,
    messages: [{ role: "user", content: "Hello there" }],
  });
  return async () => {
    const started = performance.now();
    let first: number | undefined;
    let finished = false;
    const parser = createParser({
      onEvent(event) {
        if (event.data === "[DONE]") {
          finished = true;
          return;
        }
        if (first !== undefined) return;
        const chunk = JSON.parse(event.data) as { choices?: { delta?: { content?: string } }[]; error?: unknown };
        if (chunk.error) throw new Error(`stream error: ${JSON.stringify(chunk.error)}`);
        if (chunk.choices?.[0]?.delta?.content) first = performance.now();
      },
    });
    const headers = { "content-type": "application/json", authorization: `Bearer ${apiKey}` };
    const response = await fetch(url, { method: "POST", headers, body });
    if (!response.ok || !response.body) throw new Error(`${url}: HTTP ${response.status} ${await response.text()}`);
    const decoder = new TextDecoder();
    for await (const bytes of response.body) parser.feed(decoder.decode(bytes as Uint8Array, { stream: true }));
    if (first === undefined || !finished) throw new Error(`${url}: the stream ended without a token or [DONE]`);
    return first - started;
  };
}

/**
 * InferenceService.Chat over gRPC (HTTP/2, one connection shared by all streams), as the account whose key is
 * sent in x-iris-account-key; TTFT = first Token event.
 */
export function grpcChat(
  baseUrl: string,
  accountKey: string,
  maxTokens = 16,
): { request: TimedRequest; client: Client<typeof InferenceService> } {
  const client = createClient(InferenceService, createGrpcTransport({ baseUrl }));
  const params = { messages: [{ role: Role.USER, content: "Hello there" }], maxTokens };
  const headers = { "x-iris-account-key": accountKey };
  return {
    client,
    request: async () => {
      const started = performance.now();
      let first: number | undefined;
      let done = false;
      for await (const response of client.chat({ params }, { headers })) {
        if (response.event.case === "token") first ??= performance.now();
        else if (response.event.case === "done") done = true;
      }
      if (first === undefined || !done) throw new Error(`${baseUrl}: Chat ended without a token or done`);
      return first - started;
    },
  };
}
