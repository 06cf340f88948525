// The protovalidate interceptor on every kind of call: unary and the messages of a bidi stream.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { describe, expect, it } from "vitest";
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  NodeService,
  type ConnectRequest,
} from "../gen/iris/v1/node_pb.ts";

const register = (nodeId: string) =>
  create(ConnectRequestSchema, {
    message: {
      case: "register",
      value: { nodeId, accountKey: "1234 5678 9012 3456", modelName: "llama-3-8b", maxConcurrentTasks: 2 },
    },
  });

/** A node stream that acknowledges every message it receives, so validation is the only way to fail. */
const transport = createRouterTransport(
  (router) =>
    router.service(NodeService, {
      async *connect(requests) {
        for await (const request of requests) {
          if (request.message.case === "register") {
            yield create(ConnectResponseSchema, {
              message: { case: "registerAck", value: { nodeId: request.message.value.nodeId } },
            });
          }
        }
      },
    }),
  { router: { interceptors: [createValidateInterceptor()] } },
);

async function collect(messages: ConnectRequest[]): Promise<{ acks: string[]; error?: ConnectError }> {
  const acks: string[] = [];
  async function* stream() {
    yield* messages;
  }
  try {
    for await (const response of createClient(NodeService, transport).connect(stream())) {
      if (response.message.case === "registerAck") acks.push(response.message.value.nodeId);
    }
    return { acks };
  } catch (err) {
    return { acks, error: ConnectError.from(err) };
  }
}

describe("validation of stream messages", () => {
  it("lets valid messages through", async () => {
    expect(await collect([register("node-1"), register("node-2")])).toEqual({ acks: ["node-1", "node-2"] });
  });

  it("ends the stream with InvalidArgument naming the field at the first invalid message", async () => {
    const { acks, error } = await collect([register("node-1"), register("bad id!"), register("node-3")]);
    expect(acks).toEqual(["node-1"]);
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.rawMessage).toMatch(/node_id/);
  });

  it("requires one of the message kinds", async () => {
    const { error } = await collect([create(ConnectRequestSchema, {})]);
    expect(error?.code).toBe(Code.InvalidArgument);
    expect(error?.rawMessage).toMatch(/message/);
  });
});
