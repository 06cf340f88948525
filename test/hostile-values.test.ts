// Hostile values are just bad values, over real sockets: prototype names as roles and hints, unknown enum names over
// Connect JSON, garbage protobuf bytes, an `alg: none` token on /v1, a non-JSON SSE body, a NUL in a node's model
// name. Each is a 4xx / Connect code naming the field, and none is charged: with one anonymous message a day, the
// same address still gets its answer.
import * as grpc from "@grpc/grpc-js";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccountService } from "../gen/iris/v1/account_pb.ts";
import { Role } from "../gen/iris/v1/common_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { startTestCoordinator, type TestCoordinator } from "./support/coordinator.ts";
import { connectFailure } from "./support/errors.ts";
import { startScriptedNode, type ScriptedNode } from "./support/scripted-node.ts";

const simple = "Translate 'good morning' to French.";
const messages = [{ role: "user", content: simple }];
const garbage = new Uint8Array([0xff, 0xff, 0xff]);
// header {"alg":"none","typ":"JWT"}, claims of an admin, and no signature
const algNone = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString("base64url")}.${Buffer.from(
  JSON.stringify({
    sub: "00000000-0000-0000-0000-000000000000",
    role: "admin",
    iss: "iris-coordinator",
    aud: "iris",
    exp: 4_000_000_000,
  }),
).toString("base64url")}.`;

describe("hostile values", () => {
  let coordinator: TestCoordinator;
  let node: ScriptedNode;
  let accountKey: string;
  let ip = 0;
  /** A fresh client address (X-Forwarded-For with TRUST_PROXY), so each case starts with its one message. */
  const address = () => `198.51.100.${++ip}`;

  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      RATE_LIMIT_ANONYMOUS_PER_DAY: "1",
      TRUST_PROXY: "true",
      JWT_SECRET: "hostile-values-secret-of-at-least-32-characters",
    });
    accountKey = (await createClient(AccountService, createGrpcTransport({ baseUrl: coordinator.url })).generateKey({}))
      .accountKey;
    node = startScriptedNode({ baseUrl: coordinator.url, accountKey, nodeId: "mid", maxConcurrentTasks: 4 });
    await node.registered;
  });
  afterAll(async () => {
    node?.kill();
    await coordinator?.close();
  });

  const post = (path: string, from: string, body: string | Uint8Array, headers: Record<string, string> = {}) =>
    fetch(coordinator.url + path, {
      method: "POST",
      headers: { "content-type": "application/json", "x-forwarded-for": from, ...headers },
      body,
    });
  const openai = (from: string, body: unknown, headers: Record<string, string> = {}) =>
    post("/v1/chat/completions", from, JSON.stringify(body), headers);
  const sse = (from: string, body: unknown, headers: Record<string, string> = {}) =>
    post("/api/chat/stream", from, JSON.stringify(body), headers);
  const connectJson = (from: string, body: unknown) =>
    post("/iris.v1.InferenceService/ChatUnary", from, JSON.stringify(body), { "connect-protocol-version": "1" });

  /** Nothing was charged: the address's one message of the day is still there, and only one. */
  async function expectUncharged(from: string, headers: Record<string, string> = {}): Promise<void> {
    const answer = await openai(from, { model: "auto", messages }, headers);
    expect(answer.status, await answer.clone().text()).toBe(200);
    expect((await openai(from, { model: "auto", messages })).status).toBe(429);
  }

  it("refuses prototype names as OpenAI roles with 400 naming messages[0].role", async () => {
    const from = address();
    for (const role of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const response = await openai(from, { model: "auto", messages: [{ role, content: simple }] });
      expect(response.status, role).toBe(400);
      const { error } = (await response.json()) as { error: { param: string; message: string; type: string } };
      expect(error).toMatchObject({ type: "invalid_request_error", param: "messages[0].role" });
      expect(error.message).toContain("messages[0].role");
    }
    await expectUncharged(from);
  });

  it("refuses prototype names as a difficulty on /v1 and on the SSE route, naming the field", async () => {
    const from = address();
    for (const difficulty of ["constructor", "__proto__", "valueOf"]) {
      const v1 = await openai(from, { model: "auto", messages, difficulty });
      expect(v1.status, difficulty).toBe(400);
      expect(((await v1.json()) as { error: { param: string } }).error.param).toBe("difficulty");
      const stream = await sse(from, { messages, difficulty });
      expect(stream.status, difficulty).toBe(400);
      expect(await stream.json()).toMatchObject({
        code: "invalid_argument",
        field: "difficulty",
        message: expect.stringContaining("difficulty"),
      });
    }
    await expectUncharged(from);
  });

  it("refuses an unknown enum name or field over Connect JSON with invalid_argument naming the field", async () => {
    const from = address();
    const cases = [
      [
        { params: { messages: [{ role: "ROLE_USER", content: simple }], difficulty: "DIFFICULTY_HARD" } },
        /^invalid params\.difficulty: "DIFFICULTY_HARD" is not a value of iris\.v1\.Difficulty/,
      ],
      [
        { params: { messages: [{ role: "constructor", content: simple }] } },
        /^invalid params\.messages\[\]\.role: "constructor"/,
      ],
      [
        { params: { messages: [{ role: "ROLE_USER", content: simple }], difficulty: "__proto__" } },
        /params\.difficulty/,
      ],
      [
        { params: { messages: [{ role: "ROLE_USER", content: simple }], difficulity: "DIFFICULTY_SIMPLE" } },
        /key "difficulity" is unknown/,
      ],
    ] as const;
    for (const [body, message] of cases) {
      const response = await connectJson(from, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      const error = (await response.json()) as { code: string; message: string };
      expect(error.code).toBe("invalid_argument");
      expect(error.message).toMatch(message);
    }
    // the same request with a known name is answered, and it is the address's first message
    const good = await connectJson(from, {
      params: { messages: [{ role: "ROLE_USER", content: simple }], difficulty: "DIFFICULTY_SIMPLE" },
    });
    expect(good.status, await good.clone().text()).toBe(200);
    expect((await openai(from, { model: "auto", messages })).status).toBe(429);
  });

  it(
    "answers garbage protobuf bytes with InvalidArgument on Connect, gRPC and gRPC-Web, naming the " + "message",
    async () => {
      const from = address();
      const connect = await post("/iris.v1.InferenceService/ChatUnary", from, garbage, {
        "content-type": "application/proto",
        "connect-protocol-version": "1",
      });
      expect(connect.status).toBe(400);
      expect(await connect.json()).toMatchObject({
        code: "invalid_argument",
        message: expect.stringMatching(/^the request is not a valid iris\.v1\.ChatUnaryRequest in protobuf binary: /),
      });

      // one gRPC-Web frame: flags 0, the length, the bytes; the status comes back as trailers
      const frame = new Uint8Array([0, 0, 0, 0, garbage.length, ...garbage]);
      const web = await post("/iris.v1.InferenceService/ChatUnary", from, frame, {
        "content-type": "application/grpc-web+proto",
      });
      const trailers = decodeURIComponent(await web.text());
      expect(trailers).toContain("grpc-status: 3\r\n");
      expect(trailers).toContain("not a valid iris.v1.ChatUnaryRequest in protobuf binary");

      const client = new grpc.Client(coordinator.url.replace("http://", ""), grpc.credentials.createInsecure());
      const metadata = new grpc.Metadata();
      metadata.set("x-forwarded-for", from);
      const status = (method: string) =>
        new Promise<grpc.StatusObject>((resolve) => {
          const path = `/iris.v1.InferenceService/${method}`;
          const bytes = () => Buffer.from(garbage);
          const same = (b: Buffer) => b;
          if (method === "Chat")
            client
              .makeServerStreamRequest(path, bytes, same, {}, metadata)
              .on("data", () => {})
              .on("error", () => {})
              .on("status", resolve);
          else client.makeUnaryRequest(path, bytes, same, {}, metadata, () => {}).on("status", resolve);
        });
      try {
        for (const method of ["ChatUnary", "Chat"]) {
          const { code, details } = await status(method);
          expect(code, method).toBe(grpc.status.INVALID_ARGUMENT);
          expect(details, method).toMatch(/not a valid iris\.v1\.Chat(Unary)?Request in protobuf binary/);
        }
      } finally {
        client.close();
      }
      await expectUncharged(from);
    },
  );

  it("refuses a node whose registration holds a NUL (text cannot) with InvalidArgument naming the field", async () => {
    const nul = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId: "nul-model",
      modelName: "Llama-3-8B-\u0000-Q4_K_M",
    });
    const err = await connectFailure(nul.registered);
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toMatch(/model_name/);
    nul.kill();
  });

  it("refuses an alg:none token on /v1 with 401 naming the header, instead of serving it as anonymous", async () => {
    const from = address();
    for (const token of [algNone, `${algNone}x`, "a.b.c", "eyJhbGciOiJub25lIn0"]) {
      const response = await openai(from, { model: "auto", messages }, { authorization: `Bearer ${token}` });
      expect(response.status, token).toBe(401);
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe("invalid_api_key");
      expect(error.message).toContain("Authorization: Bearer");
    }
    // the same token is refused over gRPC too (it always was)
    const chat = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
    const refused = await connectFailure(
      chat.chatUnary(
        { params: { messages: [{ role: Role.USER, content: simple }] } },
        { headers: { authorization: `Bearer ${algNone}`, "x-forwarded-for": from } },
      ),
    );
    expect(refused.code).toBe(Code.Unauthenticated);
    // a placeholder API key is still anonymous, and the address's message is still there
    await expectUncharged(from, { authorization: "Bearer sk-no-key-required" });
  });

  it("answers a non-JSON body on the SSE route with 415 naming content-type", async () => {
    const from = address();
    for (const type of [
      "text/plain",
      "text/plain; charset=utf-8",
      "application/x-www-form-urlencoded",
      "application/jsonx",
    ]) {
      const response = await sse(from, { messages }, { "content-type": type });
      expect(response.status, type).toBe(415);
      const body = (await response.json()) as { code: string; message: string; field: string };
      expect(body).toMatchObject({ code: "invalid_argument", field: "content-type" });
      expect(body.message).toContain("content-type: application/json");
    }
    const json = await sse(from, { messages }, { "content-type": "application/json; charset=utf-8" });
    expect(json.status).toBe(200);
    await json.text();
    expect((await openai(from, { model: "auto", messages })).status).toBe(429);
  });
});
