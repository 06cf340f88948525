// The lean bidi client against a real connect-es gRPC server on h2c: messages both ways, the server's status in
// trailers and in a trailers-only answer, a refused connection, a server that drops, and a caller's abort.
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  NodeService,
  type ConnectRequest,
  type ConnectResponse,
} from "../../gen/iris/v1/node_pb.ts";
import { Channel } from "../channel.ts";
import { callBidi } from "./bidi-client.ts";
import { drain, each } from "../../test/support/iterables.ts";

const method = NodeService.method.connect;

function heartbeat(activeTasks: number): ConnectRequest {
  return create(ConnectRequestSchema, { message: { case: "heartbeat", value: { activeTasks } } });
}

async function failure(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ConnectError) return err;
    throw err;
  }
  throw new Error("expected the call to fail");
}

describe("the lean gRPC bidi client", () => {
  let server: http2.Http2Server;
  let url: string;
  /** What the server's handler does with the call's requests. */
  let handler: (requests: AsyncIterable<ConnectRequest>) => AsyncIterable<ConnectResponse>;
  const serverSaw: string[] = [];

  beforeAll(async () => {
    const routes = (router: ConnectRouter) =>
      router.rpc(method, (requests) => handler(requests) as AsyncIterable<ConnectResponse>);
    server = http2.createServer(connectNodeAdapter({ routes }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server?.close();
  });

  it("sends its requests and reads the answers, in order, then ends with the server's OK", async () => {
    handler = async function* (requests) {
      for await (const request of requests) {
        if (request.message.case !== "heartbeat") continue;
        const reputation = request.message.value.activeTasks;
        yield create(ConnectResponseSchema, { message: { case: "heartbeatAck", value: { reputation } } });
      }
    };
    const signal = new AbortController().signal;
    const replies = await drain(callBidi(url, method, each([1, 2, 3, 4].map(heartbeat)), { signal }));
    expect(replies.map((reply) => reply.message.value)).toMatchObject(
      [1, 2, 3, 4].map((reputation) => ({ reputation })),
    );
  });

  it("ends with the server's error after the answers sent before it, and with a trailers-only error", async () => {
    handler = async function* () {
      yield create(ConnectResponseSchema, { message: { case: "heartbeatAck", value: { reputation: 1 } } });
      throw new ConnectError("node_id: bound to another registration", Code.PermissionDenied);
    };
    const signal = new AbortController().signal;
    const replies: ConnectResponse[] = [];
    const err = await failure(
      (async () => {
        for await (const reply of callBidi(url, method, each([heartbeat(1)]), { signal })) replies.push(reply);
      })(),
    );
    expect(replies).toHaveLength(1);
    expect([err.code, err.rawMessage]).toEqual([Code.PermissionDenied, "node_id: bound to another registration"]);

    handler = async function* () {
      yield* [];
      throw new ConnectError("the first message must be a register", Code.InvalidArgument);
    };
    const early = await failure(drain(callBidi(url, method, each([heartbeat(1)]), { signal })));
    expect([early.code, early.rawMessage]).toEqual([Code.InvalidArgument, "the first message must be a register"]);
  });

  it("says Unavailable, with the Node.js error as the cause, when nothing listens", async () => {
    const closed = http2.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const signal = new AbortController().signal;
    const err = await failure(drain(callBidi(`http://127.0.0.1:${port}`, method, new Channel(), { signal })));
    expect(err.code).toBe(Code.Unavailable);
    expect((err.cause as NodeJS.ErrnoException).code).toBe("ECONNREFUSED");
  });

  it("ends with Canceled when the caller aborts, and the server's handler sees the call end", async () => {
    const serverEnded = Promise.withResolvers<void>();
    handler = async function* (requests) {
      try {
        for await (const _ of requests) {
          yield create(ConnectResponseSchema, { message: { case: "heartbeatAck", value: { reputation: 7 } } });
        }
      } finally {
        serverSaw.push("ended");
        serverEnded.resolve();
      }
    };
    const outbox = new Channel<ConnectRequest>();
    outbox.push(heartbeat(1));
    const abort = new AbortController();
    const replies = callBidi(url, method, outbox, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await replies.next()).value?.message.value).toMatchObject({ reputation: 7 });
    abort.abort();
    const err = await failure(replies.next());
    expect(err.code).toBe(Code.Canceled);
    await serverEnded.promise;
    expect(serverSaw).toContain("ended");
  });

  it("says Unavailable when the server goes away mid-call", async () => {
    const sockets = new Set<import("node:net").Socket>();
    const doomed = http2.createServer(connectNodeAdapter({ routes: (router) => router.rpc(method, () => hang()) }));
    doomed.on("connection", (socket) => sockets.add(socket));
    await new Promise<void>((resolve) => doomed.listen(0, "127.0.0.1", resolve));
    const port = (doomed.address() as AddressInfo).port;
    const signal = new AbortController().signal;
    const call = drain(callBidi(`http://127.0.0.1:${port}`, method, new Channel(), { signal }));
    while (sockets.size === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    for (const socket of sockets) socket.destroy();
    const err = await failure(call);
    expect(err.code).toBe(Code.Unavailable);
    doomed.close();
  });
});

async function* hang(): AsyncIterable<ConnectResponse> {
  await new Promise(() => {});
  yield create(ConnectResponseSchema, {});
}
