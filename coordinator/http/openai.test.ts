// The OpenAI-compatible routes over the chat pipeline with a stand-in orchestrator and limiter: what reaches the
// orchestrator, and timings (a long queue wait) a real coordinator would need minutes for. End-to-end behaviour:
// test/openai-api.test.ts.
import { Code, ConnectError } from "@connectrpc/connect";
import Fastify from "fastify";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { NodeRegistry } from "../nodes/registry.ts";
import type { Principal } from "../accounts/principal.ts";
import type { Kysely } from "kysely";
import type { Database } from "../db/schema.ts";
import type { ChatLimiter } from "../limits/chat-limits.ts";
import { createChatPipeline } from "../tasks/chat-pipeline.ts";
import type { ChatEvent, ChatInput } from "../tasks/chat.ts";
import { registerOpenAiRoutes } from "./openai.ts";

const simple = [{ role: "user" as const, content: "Translate 'good morning' to French." }];

/** An SSE body's events: comments and data payloads, in order. */
function sseEvents(body: string): { data?: string; comment?: string }[] {
  return body
    .slice(0, -2)
    .split("\n\n")
    .map((event) => (event.startsWith(": ") ? { comment: event.slice(2) } : { data: event.slice("data: ".length) }));
}

describe("OpenAI-compatible routes over a stand-in orchestrator", () => {
  const accepted: ChatEvent = {
    type: "accepted",
    taskId: "t1",
    difficulty: "SIMPLE",
    tier: "MID",
    nodeId: "n1",
    model: "m",
    classifier: "local",
  };
  const done: ChatEvent = {
    type: "done",
    taskId: "t1",
    promptTokens: 1,
    completionTokens: 1,
    ttftMs: 1,
    totalMs: 1,
    tokensPerSecond: 1,
    nodeId: "n1",
    nodeIds: ["n1"],
    finishReason: "length",
  };

  /** Admits everyone, meters nothing; a test's own `admit` may refuse. */
  const admitAll: Pick<ChatLimiter, "admit" | "meter"> = { admit: async () => undefined, meter: (events) => events };

  async function serve(
    chat: (input: ChatInput) => AsyncGenerator<ChatEvent>,
    body: unknown,
    caller: { principal?: Principal; admit?: ChatLimiter["admit"] } = {},
  ) {
    const app = Fastify();
    // the body never carries an account key here, so the pipeline never asks the database
    const pipeline = createChatPipeline({
      db: {} as Kysely<Database>,
      orchestrator: { chat },
      limiter: { ...admitAll, ...(caller.admit ? { admit: caller.admit } : {}) },
    });
    const resolveCaller = async () => caller.principal ?? { kind: "anonymous" as const };
    registerOpenAiRoutes(app, {
      chat: pipeline,
      resolveCaller,
      registry: new NodeRegistry(),
      logger: pino({ level: "silent" }),
      keepAliveMs: 50,
    });
    const url = await app.listen({ port: 0, host: "127.0.0.1" });
    try {
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { response, text: await response.text() };
    } finally {
      await app.close();
    }
  }

  it(
    "hands the orchestrator the request: text parts joined, developer as system, the newer max tokens " + "field",
    async () => {
      let input: ChatInput | undefined;
      const body = {
        model: "llama",
        messages: [
          { role: "developer", content: "Be brief." },
          {
            role: "user",
            content: [
              { type: "text", text: "Say" },
              { type: "text", text: "hello" },
            ],
          },
        ],
        max_tokens: 10,
        max_completion_tokens: 20,
        temperature: 0,
        difficulty: "Complex",
        user: "ignored",
      };
      const { response } = await serve(async function* (received) {
        input = received;
        yield accepted;
        yield done;
      }, body);
      expect(response.status).toBe(200);
      expect(input).toMatchObject({
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "Say\nhello" },
        ],
        model: "llama",
        maxTokens: 20,
        temperature: 0,
        difficultyHint: "COMPLEX",
        clientAddress: "127.0.0.1",
      });
      // the response ended whole: nothing is left to cancel, so nothing is aborted (a client that goes away is)
      expect(input!.signal.aborted).toBe(false);
    },
  );

  it("lets the limiter refuse (401, 429 with Retry-After), and records the caller's account", async () => {
    const answer = async function* (input: ChatInput): AsyncGenerator<ChatEvent> {
      expect(input.accountId).toBe("account-1");
      yield accepted;
      yield done;
    };
    const refuse = (code: Code) => ({
      admit: async () => {
        throw new ConnectError("refused by the limiter", code);
      },
    });
    const unauthenticated = await serve(answer, { messages: simple }, refuse(Code.Unauthenticated));
    expect(unauthenticated.response.status).toBe(401);
    expect(JSON.parse(unauthenticated.text).error).toMatchObject({
      type: "invalid_request_error",
      code: "invalid_api_key",
    });
    const limited = await serve(answer, { messages: simple, stream: true }, refuse(Code.ResourceExhausted));
    expect(limited.response.status).toBe(429);
    expect(limited.response.headers.get("retry-after")).toMatch(/^\d+$/);
    const admitted = await serve(
      answer,
      { messages: simple },
      { principal: { kind: "account", accountId: "account-1" } },
    );
    expect(admitted.response.status).toBe(200);
  });

  it("sends the 200 and SSE comments once a streamed request has waited keepAliveMs", async () => {
    const { response, text } = await serve(
      async function* () {
        yield { type: "queued", position: 3, maxWaitMs: 10_000 };
        await new Promise((resolve) => setTimeout(resolve, 180));
        yield accepted;
        yield { type: "token", text: "hi" };
        yield done;
      },
      { messages: simple, stream: true },
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("x-iris-task-id")).toBeNull(); // sent before a node took the request
    const events = sseEvents(text);
    expect(events[0]).toEqual({ comment: "queued position 3" });
    const data = events.filter((e) => e.data).map((e) => e.data!);
    expect(data.at(-1)).toBe("[DONE]");
    expect(JSON.parse(data.at(-2)!).choices[0].finish_reason).toBe("length");
  });
  it("sends the 200, the routing headers and the role once a node has sent no token for keepAliveMs", async () => {
    const { response, text } = await serve(
      async function* () {
        yield accepted;
        await new Promise((resolve) => setTimeout(resolve, 180));
        yield { type: "token", text: "hi" };
        yield done;
      },
      { messages: simple, stream: true },
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("x-iris-task-id")).toBe(accepted.taskId); // the node was known when it went out
    const events = sseEvents(text);
    expect(JSON.parse(events[0]!.data!).choices[0].delta).toEqual({ role: "assistant", content: "" });
    expect(events[1]).toEqual({ comment: "keep-alive" });
    const deltas = events.filter((e) => e.data && e.data !== "[DONE]").map((e) => JSON.parse(e.data!).choices[0].delta);
    expect(deltas.filter((d) => d.role)).toHaveLength(1); // one role chunk, however it began
    expect(deltas.map((d) => d.content ?? "").join("")).toBe("hi");
  });
});
