// The OpenAI-compatible API against a real coordinator and scripted nodes, with the official `openai` SDK as
// the client (and raw fetch where the exact wire format matters).

import OpenAI, {
  APIError,
  APIUserAbortError,
  BadRequestError,
  InternalServerError,
  NotFoundError,
  RateLimitError,
} from "openai";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { OpenAiErrorBody } from "../coordinator/http/openai-errors.ts";
import { TaskErrorReason } from "../gen/iris/v1/node_pb.ts";
import { type ScriptedNodeOptions, ScriptedNodes } from "./support/scripted-node.ts";
import { newAccountKey, startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";

const simple = [{ role: "user" as const, content: "Translate 'good morning' to French." }];
const QUEUE_MAX_WAIT_MS = 700;

/** The `data:` payloads and comment lines of an SSE body, in order. */
function sseEvents(body: string): { data?: string; comment?: string }[] {
  expect(body.endsWith("\n\n")).toBe(true);
  return body
    .slice(0, -2)
    .split("\n\n")
    .map((event) => {
      expect(event).not.toContain("\n"); // one line per event: JSON never spans lines
      if (event.startsWith(": ")) return { comment: event.slice(2) };
      expect(event.startsWith("data: ")).toBe(true);
      return { data: event.slice(6) };
    });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to fail");
}

describe("OpenAI-compatible API", () => {
  let coordinator: TestCoordinator;
  let accountKey: string;
  let client: OpenAI;
  const nodes = new ScriptedNodes(() => ({ baseUrl: coordinator.url, accountKey }));

  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      HEARTBEAT_INTERVAL_MS: "200",
      QUEUE_MAX_WAIT_MS: String(QUEUE_MAX_WAIT_MS),
    });
    accountKey = await newAccountKey(coordinator.url);
    // no retries: 429/503 are what these tests expect to see, not to have retried away
    client = new OpenAI({ baseURL: `${coordinator.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  afterEach(async () => {
    nodes.killAll();
    await expect.poll(() => coordinator.registry.size).toBe(0);
  });
  afterAll(async () => {
    await coordinator?.close();
  });

  const node = (options: Partial<ScriptedNodeOptions> & { nodeId: string }) => nodes.start(options);

  const post = (body: unknown) =>
    fetch(`${coordinator.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  it("streams the tokens in order, ending with finish_reason", async () => {
    await node({ nodeId: "mid", modelName: "llama-3.1-8B-Q4_K_M" });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of await client.chat.completions.create({ model: "auto", messages: simple, stream: true }))
      chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("Hello, world!");
    expect(chunks.slice(1, -1).map((c) => c.choices[0]!.delta.content)).toEqual(["Hello", ",", " world", "!"]);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: "assistant", content: "" });
    expect(chunks.at(-1)!.choices[0]).toMatchObject({ delta: {}, finish_reason: "stop" });
    expect(chunks.every((c) => c.object === "chat.completion.chunk" && c.model === "llama-3.1-8B-Q4_K_M")).toBe(true);
    expect(chunks.some((c) => "usage" in c)).toBe(false);
  });

  it("adds a usage chunk with choices: [] when stream_options.include_usage is set", async () => {
    await node({ nodeId: "mid" });
    const chunks: ChatCompletionChunk[] = [];
    const stream = await client.chat.completions.create({
      messages: simple,
      model: "auto",
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 7, completion_tokens: 4, total_tokens: 11 });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe("stop");
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
  });

  it("answers without streaming: the whole text, usage, and Iris's routing in headers", async () => {
    await node({ nodeId: "mid", script: () => ({ tokens: ["Bon", "jour"] }) });
    const { data, response } = await client.chat.completions
      .create({ model: "auto", messages: simple, max_tokens: 50, temperature: 0.2 })
      .withResponse();
    expect(data).toMatchObject({
      object: "chat.completion",
      model: "scripted-8B-Q4_K_M",
      choices: [{ index: 0, message: { role: "assistant", content: "Bonjour" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 },
    });
    expect(data.created).toBeCloseTo(Date.now() / 1000, -1);
    const taskId = response.headers.get("x-iris-task-id");
    expect(data.id).toBe(`chatcmpl-${taskId}`);
    expect(response.headers.get("x-iris-node-id")).toBe("mid");
    expect(response.headers.get("x-iris-tier")).toBe("mid");
    expect(response.headers.get("x-iris-difficulty")).toBe("simple");
    expect(nodes.at(0)!.assigns[0]!.maxTokens).toBe(50);
  });

  it("sends OpenAI's exact SSE wire format, each token as soon as the node sends it", async () => {
    await node({ nodeId: "mid", script: () => ({ tokens: ["a", "b", "c"], delayMs: 150 }) });
    const response = await post({ model: "auto", messages: simple, stream: true });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(response.headers.get("cache-control")).toContain("no-cache");
    expect(response.headers.get("x-accel-buffering")).toBe("no");
    expect(response.headers.get("x-iris-node-id")).toBe("mid");
    expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/); // set by Fastify before the hijack
    let body = "";
    const arrivals: number[] = [];
    const decoder = new TextDecoder();
    for await (const bytes of response.body!) {
      body += decoder.decode(bytes, { stream: true });
      arrivals.push(Date.now());
    }
    // tokens come 150 ms apart: buffering would deliver them in one piece at the end
    expect(arrivals.length).toBeGreaterThanOrEqual(3);
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThanOrEqual(250);
    const events = sseEvents(body);
    expect(events.at(-1)).toEqual({ data: "[DONE]" });
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data!) as ChatCompletionChunk);
    expect(chunks[0]!.choices).toEqual([
      { index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
    ]);
    expect(chunks.slice(1, 4).map((c) => c.choices[0]!.delta)).toEqual([
      { content: "a" },
      { content: "b" },
      { content: "c" },
    ]);
    expect(chunks[4]!.choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]);
    expect(chunks).toHaveLength(5);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0]!.id).toBe(`chatcmpl-${response.headers.get("x-iris-task-id")}`);
    expect(new Set(chunks.map((c) => c.created)).size).toBe(1);
    expect(new Set(chunks.map((c) => c.model))).toEqual(new Set(["scripted-8B-Q4_K_M"]));
  });

  it("lists auto (any model) first, then the models live nodes serve", async () => {
    const listed = async () => {
      const models = [];
      for await (const model of client.models.list()) models.push(model);
      return models;
    };
    // with no node at all, `auto` is still a name a validating client may send
    expect((await listed()).map((m) => m.id)).toEqual(["auto"]);
    expect((await client.models.retrieve("auto")).id).toBe("auto");
    await node({ nodeId: "a", modelName: "qwen2.5-14B-Q4_K_M" });
    await node({ nodeId: "b", modelName: "qwen2.5-14B-Q4_K_M" });
    await node({ nodeId: "c", modelName: "meta-llama/Llama-3.1-8B" });
    const models = await listed();
    expect(models.map((m) => m.id)).toEqual(["auto", "meta-llama/Llama-3.1-8B", "qwen2.5-14B-Q4_K_M"]);
    expect(models.every((m) => m.object === "model" && m.owned_by === "iris" && Number.isInteger(m.created))).toBe(
      true,
    );
    expect((await client.models.retrieve("meta-llama/Llama-3.1-8B")).id).toBe("meta-llama/Llama-3.1-8B");
    expect(await rejection(client.models.retrieve("gpt-4o"))).toBeInstanceOf(NotFoundError);
  });

  it("refuses an unknown model with 404 model_not_found, streaming or not", async () => {
    await node({ nodeId: "mid" });
    for (const stream of [false, true]) {
      const err = await rejection(client.chat.completions.create({ model: "gpt-4o", messages: simple, stream }));
      expect(err).toBeInstanceOf(NotFoundError);
      expect(err).toMatchObject({ status: 404, code: "model_not_found", type: "invalid_request_error" });
      // the same words reach the chat page and the CLI: the models to pick from, never an RPC's name
      expect((err as Error).message).toContain(
        'no connected node serves model "gpt-4o"; served now: scripted-8B-Q4_K_M',
      );
      expect((err as Error).message).not.toContain("ListModels");
    }
    expect(nodes.at(0)!.assigns).toHaveLength(0);
  });

  it(
    "takes the division_mode extension field: consensus over three nodes, with the nodes and the verdict in " +
      "`iris`",
    async () => {
      for (const nodeId of ["c-1", "c-2", "c-3"]) await node({ nodeId });
      // the official SDK sends fields it does not know as they are: this is how an OpenAI client asks for a mode
      const extension = { division_mode: "consensus", consensus_nodes: 3 } as Record<string, unknown>;
      const { data, response } = await client.chat.completions
        .create({ model: "auto", messages: simple, ...extension })
        .withResponse();
      expect(response.headers.get("x-iris-division-mode")).toBe("consensus");
      expect(data.choices[0]!.message.content).toBe("Hello, world!");
      const iris = (data as unknown as { iris: { division_mode: string; node_ids: string[]; verified: boolean } }).iris;
      expect(iris).toMatchObject({ division_mode: "consensus", verified: true });
      // two agreeing copies are a majority of three: the answer may come before the third copy ends
      expect(iris.node_ids.length).toBeGreaterThanOrEqual(2);
      for (const id of iris.node_ids) expect(["c-1", "c-2", "c-3"]).toContain(id);
      for (const scripted of nodes.all()) expect(scripted.assigns).toHaveLength(1);
      // streamed, the last chunk (the one with finish_reason) carries the same extension
      const chunks: ChatCompletionChunk[] = [];
      for await (const chunk of await client.chat.completions.create({
        model: "auto",
        messages: simple,
        stream: true,
        ...extension,
      }))
        chunks.push(chunk);
      expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe("Hello, world!");
      expect(chunks.at(-1)).toMatchObject({ iris: { division_mode: "consensus", verified: true } });
      expect(chunks.slice(0, -1).some((c) => "iris" in c)).toBe(false);
      // a single answer is plain OpenAI: no extension
      const single = await client.chat.completions.create({ model: "auto", messages: simple });
      expect("iris" in single).toBe(false);
    },
  );

  it("refuses bad bodies with 400 and the field in param", async () => {
    const cases: [unknown, string | null][] = [
      [{ model: "auto" }, "messages"],
      [{ model: "auto", messages: [] }, "messages"],
      [{ model: "auto", messages: simple, n: 2 }, "n"],
      [
        {
          model: "auto",
          messages: [
            {
              role: "user",
              content: [
                { type: "text", text: "What is this?" },
                { type: "image_url", image_url: { url: "https://x/y.png" } },
              ],
            },
          ],
        },
        "messages[0].content[1]",
      ],
      [{ model: "auto", messages: [{ role: "wizard", content: "hi" }] }, "messages[0].role"],
      [{ model: "auto", messages: simple, max_tokens: 0 }, "max_tokens"],
      [{ model: "auto", messages: simple, temperature: 3 }, "temperature"],
      [{ model: "auto", messages: simple, difficulty: "extreme" }, "difficulty"],
      [{ model: "auto", messages: simple, division_mode: "majority" }, "division_mode"],
      [{ model: "auto", messages: simple, division_mode: "consensus", consensus_nodes: 1 }, "consensus_nodes"],
      [{ model: "auto", messages: simple, consensus_nodes: 3 }, "consensus_nodes"],
      [[1, 2], null],
    ];
    for (const [body, param] of cases) {
      const response = await post(body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      const { error } = (await response.json()) as OpenAiErrorBody;
      expect(error).toMatchObject({ type: "invalid_request_error", param, code: null });
      expect(error.message).toBeTypeOf("string");
    }
    const image = await rejection(
      client.chat.completions.create({
        model: "auto",
        messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "https://x/y.png" } }] }],
      }),
    );
    expect(image).toBeInstanceOf(BadRequestError);
    expect((image as BadRequestError).message).toContain("text-only");
    const broken = await fetch(`${coordinator.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(broken.status).toBe(400);
    expect(((await broken.json()) as OpenAiErrorBody).error.type).toBe("invalid_request_error");
    const unknown = await fetch(`${coordinator.url}/v1/completions`, { method: "POST" });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as OpenAiErrorBody).error.code).toBe("unknown_url");
  });

  it("honours the difficulty hint: an advanced request goes to a PRO node", async () => {
    await node({ nodeId: "mid", tokensPerSecond: 29 });
    await node({ nodeId: "pro", parameterCount: 70e9, tokensPerSecond: 15 });
    const params = { model: "auto", messages: simple, difficulty: "advanced" };
    const { response } = await client.chat.completions.create(params).withResponse();
    expect(response.headers.get("x-iris-difficulty")).toBe("advanced");
    expect(response.headers.get("x-iris-node-id")).toBe("pro");
    expect(response.headers.get("x-iris-tier")).toBe("pro");
  });

  it("answers 503 at once when no capable node is online (no queue wait), streaming or not", async () => {
    await node({ nodeId: "basic", parameterCount: 3e9, tokensPerSecond: 50 });
    for (const stream of [false, true]) {
      const params = { model: "auto", messages: simple, stream, difficulty: "advanced" };
      const err = await rejection(client.chat.completions.create(params));
      expect(err).toBeInstanceOf(InternalServerError);
      expect(err).toMatchObject({ status: 503, type: "server_error", code: "service_unavailable" });
      expect((err as APIError).message).toContain("ADVANCED");
      expect((err as APIError).message).not.toMatch(/waited/); // refused up front, not after the queue's wait
    }
    expect(nodes.at(0)!.assigns).toHaveLength(0);
  });

  it("answers 429 with Retry-After when capable nodes stay busy past the queue wait", async () => {
    const busy = await node({
      nodeId: "busy",
      maxConcurrentTasks: 1,
      script: () => ({ tokens: Array(40).fill("z"), delayMs: 50 }),
    });
    const long = client.chat.completions.create({ model: "auto", messages: simple }).catch(() => undefined);
    await expect.poll(() => busy.assigns.length).toBe(1);
    const err = await rejection(client.chat.completions.create({ model: "auto", messages: simple, stream: true }));
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err).toMatchObject({ status: 429, type: "rate_limit_error" });
    expect((err as RateLimitError).headers.get("retry-after")).toMatch(/^\d+$/);
    await long;
  });

  it("sends a cancel to the node when the client aborts or stops reading, streaming or not", async () => {
    // The SDK ends a stream's iteration quietly on abort; what matters is that the node hears about it
    for (const stop of ["abort", "break", "abort-unary"] as const) {
      const slow = await node({
        nodeId: `slow-${stop}`,
        script: () => ({ tokens: Array(200).fill("x"), delayMs: 20 }),
      });
      const controller = new AbortController();
      if (stop === "abort-unary") {
        const answer = client.chat.completions.create(
          { model: "auto", messages: simple },
          { signal: controller.signal },
        );
        await expect.poll(() => slow.assigns.length).toBe(1);
        controller.abort();
        expect(await rejection(answer)).toBeInstanceOf(APIUserAbortError);
      } else {
        let received = 0;
        const stream = await client.chat.completions.create(
          { model: "auto", messages: simple, stream: true },
          { signal: controller.signal },
        );
        for await (const chunk of stream) {
          if (chunk.choices[0]?.delta.content !== "x") continue;
          received++;
          if (stop === "break") break;
          controller.abort();
        }
        expect(received).toBeLessThan(5);
      }
      await expect.poll(() => slow.cancels.map((c) => c.reason)).toEqual(["client_cancelled"]);
      slow.kill();
    }
  });

  it("holds the status and the role chunk for the first token; a failure before any token is a status", async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const slow = await node({
      nodeId: "slow-start",
      script: () => ({ tokens: ["a", "b"], holdUntil: held, delayMs: 100 }),
    });
    let answered = false;
    const pending = post({ model: "auto", messages: simple, stream: true }).then((response) => {
      answered = true;
      return response;
    });
    await expect.poll(() => slow.assigns.length).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(answered).toBe(false); // the node has the task, but no token came: nothing was sent yet
    release();
    const response = await pending;
    expect(response.status).toBe(200);
    expect(response.headers.get("x-iris-node-id")).toBe("slow-start");
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    // the role chunk and the first token in one read (the status and headers came with them)
    const chunks = sseEvents(first).map((e) => JSON.parse(e.data!) as ChatCompletionChunk);
    expect(chunks.map((c) => c.choices[0]!.delta)).toEqual([{ role: "assistant", content: "" }, { content: "a" }]);
    await reader.cancel();
    slow.kill();

    // a node that fails before its first token, and no other to take over: a real HTTP error, not a 200 and an event
    await node({ nodeId: "fails-first", script: () => ({ tokens: ["x"], failWith: TaskErrorReason.BACKEND_FAILED }) });
    const failed = await post({ model: "auto", messages: simple, stream: true });
    expect(failed.status).toBeGreaterThanOrEqual(400);
    expect(((await failed.json()) as OpenAiErrorBody).error.message).toMatch(/node/);
  });

  it("sends a failure after the first token as an SSE error event, without [DONE]", async () => {
    await node({ nodeId: "dies", script: () => ({ tokens: ["One", " two", " three"], dieAfter: 2, delayMs: 20 }) });
    const response = await post({ model: "auto", messages: simple, stream: true });
    expect(response.status).toBe(200);
    const events = sseEvents(await response.text());
    const last = JSON.parse(events.at(-1)!.data!);
    expect(last.error).toMatchObject({ type: "server_error", code: "service_unavailable", param: null });
    expect(events).toContainEqual({ comment: "queued position 1" }); // waiting for a node to take over
    expect(events.some((e) => e.data === "[DONE]")).toBe(false);
    const tokens = events.flatMap((e) =>
      e.data ? (JSON.parse(e.data).choices?.map((c: ChatCompletionChunk.Choice) => c.delta.content ?? "") ?? []) : [],
    );
    expect(tokens.join("")).toBe("One two");
    await node({ nodeId: "dies-again", script: () => ({ tokens: ["a", "b"], dieAfter: 1, delayMs: 20 }) });
    let text = "";
    const sdk = await rejection(
      (async () => {
        for await (const chunk of await client.chat.completions.create({
          model: "auto",
          messages: simple,
          stream: true,
        }))
          text += chunk.choices[0]?.delta.content ?? "";
      })(),
    );
    expect(text).toBe("a"); // the SDK hands out what came before the error event, then throws it
    expect(sdk).toBeInstanceOf(APIError);
    expect((sdk as APIError).message).toContain("no node");
  });

  it("logged no errors for all of the above, and never a prompt", () => {
    expect(coordinator.logs.filter((line) => (line.level as number) >= 50)).toEqual([]);
    // the 503s above were logged, as the network's state (warn) rather than as the coordinator's failure
    expect(coordinator.logs.some((line) => line.code === "service_unavailable" && line.level === 40)).toBe(true);
    expect(JSON.stringify(coordinator.logs)).not.toContain("good morning");
  });
});
