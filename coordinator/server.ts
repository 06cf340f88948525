// The coordinator's network face: Fastify + Connect (Connect, gRPC, gRPC-Web) on one port, TLS, shutdown.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import http2, { type Http2Session } from "node:http2";
import type { AddressInfo, Server as NetServer, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Logger } from "pino";
import type { Config } from "./config.ts";
import { requestContextValues } from "./request-context.ts";
import { createSinglePortServer } from "./single-port.ts";

export interface ServerOptions {
  config: Config["server"];
  logger: Logger;
  /** Registers the Connect services. */
  routes: (router: ConnectRouter) => void;
  /** Interceptors for every RPC, outermost first. */
  interceptors?: Interceptor[];
  /** Registers plain HTTP routes (pages, the OpenAI-compatible API, /healthz). */
  http?: (app: FastifyInstance) => void | Promise<void>;
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
  /** Graceful shutdown: stop accepting, drain in-flight requests, abort stragglers, then close. */
  close(): Promise<void>;
}

// Fastify's one handler serves both HTTP versions: Node's HTTP/2 compatibility API mirrors HTTP/1's.
type Http2Handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { config, logger } = options;
  const shutdown = new AbortController();
  const sessions = new Set<Http2Session>();
  const sockets = new Set<Socket | Duplex>();
  let inflight = 0;
  let drained: (() => void) | undefined;

  let servers: { listener: NetServer; http1?: http.Server; http2: http2.Http2Server | http2.Http2SecureServer } | undefined;
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    requestIdHeader: "x-request-id",
    logController: new LogController({ requestIdLogLabel: "requestId" }),
    genReqId: () => randomUUID(),
    trustProxy: config.trustProxy,
    serverFactory: (handler: http.RequestListener): http.Server => {
      if (config.tls) {
        const secure = http2.createSecureServer(
          { cert: readFileSync(config.tls.certPath), key: readFileSync(config.tls.keyPath), allowHTTP1: true },
          handler as unknown as Http2Handler,
        );
        servers = { listener: secure, http2: secure };
        return secure as unknown as http.Server;
      }
      const http1 = http.createServer(handler);
      const h2c = http2.createServer({}, handler as unknown as Http2Handler);
      servers = { listener: createSinglePortServer(http1, h2c), http1, http2: h2c };
      return http1;
    },
  });
  if (!servers) throw new Error("Fastify did not call serverFactory");
  const { listener, http1, http2: h2 } = servers;
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
    inflight++;
    reply.raw.once("close", () => {
      inflight--;
      if (inflight === 0) drained?.();
    });
    reply.header("x-request-id", req.id);
  });

  await app.register(fastifyConnectPlugin, {
    routes: options.routes,
    interceptors: options.interceptors ?? [],
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
  logger.info({ port, host: config.host, tls: Boolean(config.tls) }, "coordinator listening (HTTP/1.1 and HTTP/2 on one port)");

  let closing: Promise<void> | undefined;
  async function close(): Promise<void> {
    options.onShutdown?.();
    listener.close();
    // GOAWAY: clients open no new streams here, the running ones go on
    for (const session of sessions) session.close();
    http1?.closeIdleConnections();
    if (inflight > 0) {
      logger.info({ inflight, timeoutMs: config.shutdownTimeoutMs }, "draining in-flight requests");
      const allDone = new Promise<void>((resolve) => (drained = resolve));
      await Promise.race([allDone, delay(config.shutdownTimeoutMs)]);
    }
    if (inflight > 0) {
      logger.warn({ inflight }, "aborting requests still running after the shutdown timeout");
      shutdown.abort(new ConnectError("the coordinator is shutting down", Code.Unavailable));
      await Promise.race([new Promise<void>((resolve) => (drained = resolve)), delay(1_000)]);
    }
    for (const socket of sockets) socket.destroy();
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
