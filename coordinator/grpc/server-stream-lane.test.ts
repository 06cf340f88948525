// The lean gRPC lane for a server stream (users' InferenceService.Chat) over real h2c sockets and real connect-es
// clients: it runs the interceptors it was given (credentials included) exactly as the router does, answers their
// refusals and the handler's errors with the same codes and messages, and leaves calls with a deadline, or in another
// protocol, to the router.
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createContextKey,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ChatResponseSchema,
  InferenceService,
  type ChatRequest,
  type ChatResponse,
} from "../../gen/iris/v1/inference_pb.ts";
import { connectFailure } from "../../test/support/errors.ts";
import { loadConfig } from "../config.ts";
import { startServer, type RunningServer } from "../server.ts";
import { createValidation } from "../validation.ts";
import { serverStreamLane } from "./lane.ts";

const callerKey = createContextKey<string>("nobody");

/** Who asks, from the x-caller header, as an auth interceptor would: "intruder" is refused. */
const identify: Interceptor = (next) => (req) => {
  const caller = req.header.get("x-caller") ?? "nobody";
  if (caller === "intruder") throw new ConnectError("x-caller: not allowed", Code.Unauthenticated);
  req.contextValues.set(callerKey, caller);
  return next(req);
};

/** One token per message of the conversation (its content, with the caller's name), then done. */
async function* answer(request: ChatRequest, ctx: HandlerContext): AsyncIterable<ChatResponse> {
  for (const message of request.params!.messages) {
    if (message.content === "fail") throw new ConnectError("no node serves this", Code.NotFound);
    yield create(ChatResponseSchema, {
      event: { case: "token", value: { text: `${ctx.values.get(callerKey)}:${message.content}` } },
    });
  }
  yield create(ChatResponseSchema, { event: { case: "done", value: { finishReason: "stop" } } });
}

describe("the lean gRPC lane for a server stream", () => {
  let server: RunningServer;
  /** Calls that went through the Connect router, and calls whose interceptors ran (either way). */
  let routed = 0;
  let intercepted = 0;
  const countIntercepted: Interceptor = (next) => (req) => {
    intercepted++;
    return next(req);
  };
  const countRouted: Interceptor = (next) => (req) => {
    routed++;
    return next(req);
  };

  beforeAll(async () => {
    const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", SHUTDOWN_TIMEOUT_MS: "500" });
    const interceptors = [countIntercepted, identify, createValidation()];
    server = await startServer({
      config: config.server,
      logger: pino({ level: "silent" }),
      routes: (router) => router.rpc(InferenceService.method.chat, answer),
      interceptors: [countRouted, ...interceptors],
      lanes: [serverStreamLane(InferenceService.method.chat, answer, interceptors) as never],
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  const chat = (content: string[]) => ({ params: { messages: content.map((text) => ({ role: 2, content: text })) } });

  async function texts(
    transport: ReturnType<typeof createGrpcTransport>,
    content: string[],
    options: { headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<string[]> {
    const out: string[] = [];
    for await (const response of createClient(InferenceService, transport).chat(chat(content), options))
      out.push(response.event.case === "token" ? response.event.value.text : (response.event.case ?? "none"));
    return out;
  }

  it("serves gRPC with credentials itself, interceptors run once; a deadline or Connect takes the router", async () => {
    const grpc = createGrpcTransport({ baseUrl: server.url });
    const cases = [
      { name: "gRPC with a credential", transport: grpc, options: { headers: { "x-caller": "ada" } }, router: false },
      { name: "gRPC without one", transport: grpc, options: {}, router: false },
      { name: "gRPC with a deadline", transport: grpc, options: { timeoutMs: 5_000 }, router: true },
      {
        name: "Connect",
        transport: createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
        options: { headers: { "x-caller": "ada" } },
        router: true,
      },
    ];
    for (const { name, transport, options, router } of cases) {
      const before = { routed, intercepted };
      const caller = options.headers?.["x-caller"] ?? "nobody";
      expect(await texts(transport, ["a", "b"], options), name).toEqual([`${caller}:a`, `${caller}:b`, "done"]);
      expect(routed - before.routed, name).toBe(router ? 1 : 0);
      expect(intercepted - before.intercepted, name).toBe(1);
    }
  });

  it("answers an interceptor's refusal, a validation failure and the handler's error as the router does", async () => {
    const grpc = createGrpcTransport({ baseUrl: server.url });
    const connect = createConnectTransport({ baseUrl: server.url, httpVersion: "2" });
    const refusals: { content: string[]; headers: Record<string, string> }[] = [
      { content: ["a"], headers: { "x-caller": "intruder" } },
      { content: [], headers: {} }, // ChatParams.messages: at least one
      { content: ["a", "fail"], headers: {} },
    ];
    for (const { content, headers } of refusals) {
      const before = routed;
      const viaLane = await connectFailure(texts(grpc, content, { headers }));
      expect(routed).toBe(before);
      const viaRouter = await connectFailure(texts(connect, content, { headers }));
      expect(routed).toBe(before + 1);
      expect(viaLane.code).not.toBe(Code.Unknown);
      expect({ code: viaLane.code, message: viaLane.rawMessage }).toEqual({
        code: viaRouter.code,
        message: viaRouter.rawMessage,
      });
    }
  });
});
