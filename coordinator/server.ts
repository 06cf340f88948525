// The coordinator's network face: Fastify + Connect (Connect, gRPC, gRPC-Web) on one port, TLS, shutdown.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import http2, { type Http2Session } from "node:http2";
import type net from "node:net";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { Config } from "./config.ts";
import {
  AddressCap,
  enforceHttp2Limits,
  http1Options,
  http2Options,
  startRequestDeadlines,
} from "./connection-limits.ts";
import { endStreamsOn, RequestTracker } from "./drain.ts";
import { RequestLogController } from "./logger.ts";
import { requestContextValues } from "./request-context.ts";
import { requestDecoding } from "./request-decoding.ts";
import { createSinglePortServer } from "./single-port.ts";
import { GrpcLane, type LaneSpec } from "./grpc/lane.ts";
import { checkCertificate, createTlsFront } from "./tls-port.ts";

export interface ServerOptions {
  config: Config["server"];
  logger: Logger;
  /** Registers the Connect services. */
  routes: (router: ConnectRouter) => void;
  /** Interceptors for every RPC, outermost first. */
  interceptors?: Interceptor[];
  /**
   * Paths of streams that are not user work (agents' NodeService.Connect): shutdown does not wait for them, and
   * ends them once user requests are done so that agents reconnect elsewhere.
   */
  backgroundStreams?: string[];
  /** Registers plain HTTP routes (pages, the OpenAI-compatible API, /healthz). */
  http?: (app: FastifyInstance) => void | Promise<void>;
  /**
   * Streaming methods also served by a lean gRPC path (grpc/lane.ts): a plain gRPC call of one skips the Connect
   * router; a lane runs the interceptors it was built with (users' Chat), or none (agents' NodeService.Connect), and
   * `laneErrors` gives the error mapping of the router's.
   */
  lanes?: LaneSpec<DescMessage, DescMessage>[];
  /** What an error of a lane's handler becomes for its client (the interceptors' mapping). */
  laneErrors?: (err: unknown) => unknown;
  /** Called first thing on shutdown, e.g. to report NOT_SERVING to health checks. */
  onShutdown?: () => void;
  /** Called last on shutdown, after every connection is gone (e.g. close the database). */
  onClosed?: () => Promise<void>;
}

export interface RunningServer {
  app: FastifyInstance;
  /** The port actually bound (useful with PORT=0). */
  port: number;
  /** `http://127.0.0.1:PORT` or `https://...`, for clients on this machine. */
  url: string;
  /**
   * Graceful shutdown: stop accepting, wait for user requests (up to the shutdown timeout, then abort them), end
   * background streams with Unavailable ("reconnect"), then close: as soon as user work is done.
   */
  close(): Promise<void>;
}

// Fastify's one handler serves both HTTP versions: Node's HTTP/2 compatibility API mirrors HTTP/1's.
type Http2Handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { config, logger } = options;
  const shutdown = new AbortController();
  const sessions = new Set<Http2Session>();
  const sockets = new Set<Socket | Duplex>();
  const requests = new RequestTracker(new Set(options.backgroundStreams));
  const limits = config.connections;
  const cap = new AddressCap(limits.maxConnectionsPerAddress, logger);
  let closing: Promise<void> | undefined;
  const lanes = (options.lanes ?? []).map(
    (spec) =>
      new GrpcLane(spec, {
        readMaxBytes: config.maxMessageBytes,
        shutdownSignal: shutdown.signal,
        contextValues: (req) => requestContextValues(randomUUID(), req.socket.remoteAddress ?? ""),
        clientError: options.laneErrors ?? ((err) => err),
      }),
  );
  // behind a trusted proxy the client's address is in X-Forwarded-For, which Fastify reads: such calls take the router
  const laneFor = (req: http2.Http2ServerRequest) =>
    config.trustProxy && req.headers["x-forwarded-for"] !== undefined
      ? undefined
      : lanes.find((lane) => lane.accepts(req));
  const h2Handler =
    (handler: http.RequestListener): Http2Handler =>
    (req, res) => {
      const lane = laneFor(req);
      if (!lane) return (handler as unknown as Http2Handler)(req, res);
      requests.track(req.url, res);
      lane.serve(req, res);
    };

  let servers:
    | { listener: net.Server; http1?: http.Server; http2: http2.Http2Server | http2.Http2SecureServer }
    | undefined;
  const tls = config.tls && { cert: readFileSync(config.tls.certPath), key: readFileSync(config.tls.keyPath) };
  if (config.tls && tls) checkCertificate(tls.cert, config.tls.certPath, logger);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    requestIdHeader: "x-request-id",
    logController: new RequestLogController({ requestIdLogLabel: "requestId" }),
    genReqId: () => randomUUID(),
    trustProxy: config.trustProxy,
    serverFactory: (handler: http.RequestListener): http.Server => {
      if (tls) {
        const secure = http2.createSecureServer(
          {
            ...tls,
            allowHTTP1: true,
            handshakeTimeout: limits.headersTimeoutMs,
            ...http1Options(limits),
            ...http2Options(limits),
          },
          h2Handler(handler),
        );
        // a plain TCP listener in front, so that the cap sees each connection before TLS does any work, and
        // plaintext sent to the TLS port is told to use https://
        const front = createTlsFront(secure, {
          firstBytesTimeoutMs: limits.headersTimeoutMs,
          admit: (socket) => cap.admit(socket),
        });
        servers = { listener: front, http2: secure };
        return secure as unknown as http.Server;
      }
      const http1 = http.createServer(http1Options(limits), handler);
      const h2c = http2.createServer(http2Options(limits), h2Handler(handler));
      const listener = createSinglePortServer(http1, h2c, {
        firstBytesTimeoutMs: limits.idleTimeoutMs,
        admit: (socket) => cap.admit(socket),
      });
      servers = { listener, http1, http2: h2c };
      return http1;
    },
  });
  if (!servers) throw new Error("Fastify did not call serverFactory");
  const { listener, http1, http2: h2 } = servers;
  // client- and bidi-streaming RPCs (an agent's stream lasts for hours) have no request-body deadline
  const streamingBodies = new Set<string>();
  enforceHttp2Limits(h2, limits, (path) => streamingBodies.has(path));
  const stopRequestDeadlines = startRequestDeadlines(http1 ?? (h2 as http2.Http2SecureServer));
  h2.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  for (const server of [h2, http1]) {
    server?.on("connection", (socket: Socket | Duplex) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    });
  }

  app.addHook("onRequest", async (req, reply) => {
    requests.track(req.url, reply.raw);
    reply.header("x-request-id", req.id);
    // an HTTP/1.1 connection serves no further request once shutdown began
    if (closing && req.raw.httpVersionMajor === 1) reply.header("connection", "close");
  });

  await app.register(fastifyConnectPlugin, {
    ...requestDecoding,
    routes: (router) => {
      options.routes(router);
      for (const handler of router.handlers) {
        const kind = handler.method.methodKind;
        if (kind === "client_streaming" || kind === "bidi_streaming") streamingBodies.add(handler.requestPath);
      }
    },
    // outermost: ends every stream when shutdown aborts, even one whose handler never looks at its signal
    interceptors: [endStreamsOn(shutdown.signal), ...(options.interceptors ?? [])],
    readMaxBytes: config.maxMessageBytes,
    shutdownSignal: shutdown.signal,
    contextValues: (req) => requestContextValues(req.id, req.ip),
  });
  if (options.http) await options.http(app);
  await app.ready();

  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(config.port, config.host, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  const port = (listener.address() as AddressInfo).port;
  const url = `${config.tls ? "https" : "http"}://127.0.0.1:${port}`;
  logger.info(
    { port, host: config.host, tls: Boolean(config.tls) },
    "coordinator listening (HTTP/1.1 and HTTP/2 on one port)",
  );

  async function close(): Promise<void> {
    options.onShutdown?.();
    listener.close();
    // GOAWAY: clients open no new streams here, the running ones (agents' included) go on
    for (const session of sessions) session.close();
    http1?.closeIdleConnections();
    if (requests.user > 0) {
      logger.info({ inflight: requests.user, timeoutMs: config.shutdownTimeoutMs }, "draining in-flight requests");
      await requests.until((r) => r.user === 0, config.shutdownTimeoutMs);
    }
    if (requests.user > 0)
      logger.warn({ inflight: requests.user }, "aborting requests still running after the shutdown timeout");
    if (requests.background > 0)
      logger.info({ streams: requests.background }, "ending agents' streams: they reconnect elsewhere");
    // agents' streams served the user requests above; they end now, with a reason their agents retry on
    shutdown.abort(new ConnectError("the coordinator is shutting down; reconnect", Code.Unavailable));
    await requests.until((r) => r.user + r.background === 0, 1_000);
    for (const socket of sockets) socket.destroy();
    stopRequestDeadlines();
    await app.close();
    await options.onClosed?.();
    logger.info("coordinator stopped");
  }

  return {
    app,
    port,
    url,
    close: () => (closing ??= close()),
  };
}
