// The lean gRPC lane over real h2c sockets and real connect-es clients: what it serves, what it leaves to the
// router, errors and limits as the router reports them, client aborts, shutdown and flow control.
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  ConnectRequestSchema,
  ConnectResponseSchema,
  NodeService,
  type ConnectRequest,
  type ConnectResponse,
} from "../../gen/iris/v1/node_pb.ts";
import { Channel } from "../../common/channel.ts";
import { connectFailure } from "../../test/support/errors.ts";
import { loadConfig } from "../config.ts";
import { startServer, type RunningServer } from "../server.ts";
import { bidiLane } from "./lane.ts";
import { envelope, EnvelopeParser } from "../../common/grpc/envelope.ts";
import { drain, each } from "../../test/support/iterables.ts";

type Impl = (requests: AsyncIterable<ConnectRequest>, ctx: HandlerContext) => AsyncIterable<ConnectResponse>;

/** Answers each heartbeat with an ack whose reputation is its active_tasks; `fail` on a load of -1. */
async function* echo(requests: AsyncIterable<ConnectRequest>): AsyncIterable<ConnectResponse> {
  for await (const request of requests) {
    if (request.message.case !== "heartbeat") continue;
    if (request.message.value.load === -1) {
      throw new ConnectError("load: must be at least 0", Code.InvalidArgument);
    }
    yield create(ConnectResponseSchema, {
      message: { case: "heartbeatAck", value: { reputation: request.message.value.activeTasks } },
    });
  }
}

function heartbeat(activeTasks: number, load = 0): ConnectRequest {
  return create(ConnectRequestSchema, { message: { case: "heartbeat", value: { activeTasks, load } } });
}

describe("the lean gRPC lane for a bidi stream", () => {
  let server: RunningServer;
  let impl: Impl = echo;
  /** Calls that went through the Connect router (its interceptors run; the lane's do not). */
  let routed = 0;
  const countRouted: Interceptor = (next) => (req) => {
    routed++;
    return next(req);
  };

  beforeAll(async () => {
    const config = loadConfig({ PORT: "0", HOST: "127.0.0.1", MAX_MESSAGE_BYTES: "65536", SHUTDOWN_TIMEOUT_MS: "500" });
    const current = (r: AsyncIterable<ConnectRequest>, c: HandlerContext) => impl(r, c);
    server = await startServer({
      config: config.server,
      logger: pino({ level: "silent" }),
      routes: (router) => router.rpc(NodeService.method.connect, current),
      interceptors: [countRouted],
      lanes: [bidiLane(NodeService.method.connect, current) as never],
      laneErrors: (err) =>
        err instanceof Error && err.message === "db down"
          ? new ConnectError("database unavailable", Code.Unavailable)
          : err,
      backgroundStreams: ["/iris.v1.NodeService/Connect"],
    });
  });
  afterAll(async () => {
    await server?.close();
  });
  beforeEach(() => {
    impl = echo;
  });

  it("serves plain gRPC itself; Connect, gRPC-Web, compressed or credentialed gRPC go to the router", async () => {
    const cases = [
      { name: "gRPC", transport: createGrpcTransport({ baseUrl: server.url }), viaRouter: false },
      {
        name: "Connect",
        transport: createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
        viaRouter: true,
      },
      {
        name: "gRPC-Web",
        transport: createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2" }),
        viaRouter: true,
      },
      {
        name: "gzip gRPC",
        transport: createGrpcTransport({ baseUrl: server.url, sendCompression: compressionGzip }),
        viaRouter: true,
      },
      {
        name: "gRPC with a credential (the auth interceptor's)",
        transport: createGrpcTransport({ baseUrl: server.url }),
        headers: { authorization: "Bearer x" },
        viaRouter: true,
      },
    ];
    for (const { name, transport, viaRouter, headers } of cases) {
      const before = routed;
      const client = createClient(NodeService, transport);
      const replies: number[] = [];
      for await (const reply of client.connect(each([1, 2, 3].map((n) => heartbeat(n))), { headers })) {
        replies.push(reply.message.case === "heartbeatAck" ? reply.message.value.reputation : -1);
      }
      expect(replies, name).toEqual([1, 2, 3]);
      expect(routed - before, name).toBe(viaRouter ? 1 : 0);
    }
  });

  it("carries many messages in both directions, in order, however the data frames cut them", async () => {
    const client = createClient(NodeService, createGrpcTransport({ baseUrl: server.url }));
    const sent = Array.from({ length: 2_000 }, (_, i) => heartbeat(i));
    let count = 0;
    for await (const reply of client.connect(each(sent))) {
      expect(reply.message.value).toMatchObject({ reputation: count });
      count++;
    }
    expect(count).toBe(2_000);
  });

  it("ends the call with the handler's error code and message, and maps errors as the interceptors would", async () => {
    const client = createClient(NodeService, createGrpcTransport({ baseUrl: server.url }));
    const replies: ConnectResponse[] = [];
    const failure = await connectFailure(
      (async () => {
        for await (const reply of client.connect(each([heartbeat(1), heartbeat(2, -1), heartbeat(3)])))
          replies.push(reply);
      })(),
    );
    expect(replies).toHaveLength(1);
    expect(failure.code).toBe(Code.InvalidArgument);
    expect(failure.rawMessage).toBe("load: must be at least 0");

    impl = async function* () {
      yield* [];
      throw new Error("db down");
    };
    const mapped = await connectFailure(drain(client.connect(each([heartbeat(1)]))));
    expect([mapped.code, mapped.rawMessage]).toEqual([Code.Unavailable, "database unavailable"]);
    impl = async function* () {
      yield* [];
      throw new Error("something else");
    };
    const internal = await connectFailure(drain(client.connect(each([heartbeat(1)]))));
    expect([internal.code, internal.rawMessage]).toEqual([Code.Internal, "internal error"]);
  });

  it("refuses a message over MAX_MESSAGE_BYTES (ResourceExhausted), unparsable bytes (InvalidArgument)", async () => {
    const big = raw(server.url, [envelope(new Uint8Array(70_000))]);
    expect(await big).toMatchObject({ status: String(Code.ResourceExhausted) });
    expect(decodeURIComponent((await big).message)).toContain("larger than configured readMaxBytes 65536");
    const garbage = await raw(server.url, [envelope(Uint8Array.of(0xff, 0xff, 0xff))]);
    expect(garbage.status).toBe(String(Code.InvalidArgument));
    expect(decodeURIComponent(garbage.message)).toMatch(
      /^the request is not a valid iris.v1.ConnectRequest in protobuf binary: /,
    );
    // a message split over several writes, the last one cut short: the stream ends mid-message
    const cut = envelope(toBinary(ConnectRequestSchema, heartbeat(7)));
    const truncated = await raw(server.url, [cut.subarray(0, 3), cut.subarray(3, cut.length - 1)]);
    expect(truncated.status).toBe(String(Code.InvalidArgument));
    // whole messages split across writes arrive whole
    expect(await raw(server.url, [cut.subarray(0, 2), cut.subarray(2, 6), cut.subarray(6)])).toMatchObject({
      status: "0",
      messages: 1,
    });
  });

  it("tells the handler when the client goes away, and runs its cleanup", async () => {
    const ended = Promise.withResolvers<unknown>();
    impl = async function* (requests) {
      try {
        for await (const _ of requests)
          yield create(ConnectResponseSchema, { message: { case: "heartbeatAck", value: {} } });
      } catch (err) {
        ended.resolve(err);
        throw err;
      }
    };
    const outbox = new Channel<ConnectRequest>();
    outbox.push(heartbeat(1));
    const abort = new AbortController();
    const client = createClient(NodeService, createGrpcTransport({ baseUrl: server.url }));
    const stream = client.connect(outbox, { signal: abort.signal })[Symbol.asyncIterator]();
    await stream.next();
    abort.abort();
    const err = await ended.promise;
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Canceled);
  });

  it("reads no further while the handler is behind, and goes on when it catches up", async () => {
    const release = Promise.withResolvers<void>();
    let handled = 0;
    impl = async function* (requests) {
      for await (const _ of requests) {
        if (handled++ === 0) await release.promise;
      }
      yield create(ConnectResponseSchema, { message: { case: "heartbeatAck", value: { reputation: handled } } });
    };
    const client = createClient(NodeService, createGrpcTransport({ baseUrl: server.url }));
    const outbox = new Channel<ConnectRequest>();
    const replies = drain(client.connect(outbox));
    // about 2 MB of heartbeats while the handler is stuck on the first: HTTP/2 flow control holds the rest back
    const pad = heartbeat(1);
    for (let i = 0; i < 100_000; i++) outbox.push(pad);
    outbox.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    // the client could not write them all: the window (64 KiB per stream) and the lane's queue filled up and stopped
    expect(handled).toBe(1);
    expect(outbox.queued).toBeGreaterThan(50_000);
    release.resolve();
    const [ack] = await replies;
    expect(ack?.message.value).toMatchObject({ reputation: 100_000 });
  });
});

/** A gRPC call written by hand (bytes as given), with the trailers' status and the count of messages answered. */
function raw(url: string, writes: Buffer[]): Promise<{ status: string; message: string; messages: number }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    const stream = session.request({
      ":method": "POST",
      ":path": "/iris.v1.NodeService/Connect",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const parser = new EnvelopeParser(1 << 20);
    let messages = 0;
    stream.on("data", (data: Buffer) => {
      for (const _ of parser.push(data)) messages++;
    });
    stream.on("trailers", (trailers) => {
      resolve({ status: String(trailers["grpc-status"]), message: String(trailers["grpc-message"] ?? ""), messages });
      session.close();
    });
    stream.on("error", reject);
    for (const bytes of writes) stream.write(bytes);
    stream.end();
  });
}
