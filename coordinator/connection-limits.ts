// What one connection may hold and for how long: request deadlines, idle closing, HTTP/2 stream limits, per-address
// cap.
import type http from "node:http";
import http2 from "node:http2";
import type { Socket } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { ConnectionLimits } from "./config/server.ts";

/** Options for `http.createServer` (and an HTTP/2 secure server's HTTP/1.1 fallback). */
export function http1Options(limits: ConnectionLimits) {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    // how often Node looks for expired requests; the deadlines are kept to within a quarter
    connectionsCheckingInterval: Math.max(25, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
  };
}

/** Options for the HTTP/2 servers: the stream limit is advertised in the first SETTINGS frame. */
export function http2Options(limits: ConnectionLimits) {
  return { settings: { maxConcurrentStreams: limits.http2MaxConcurrentStreams } };
}

/**
 * Starts an HTTP/1.1 server's head and body deadlines (`headersTimeout`, `requestTimeout`). Node starts its checker
 * when the server emits 'listening', i.e. from `listen()`; a server fed sockets through emit('connection') never
 * listens, so it never would. Throws when this Node does not work that way (the deadlines would be silently off).
 * Returns a function that stops the checker.
 */
export function startRequestDeadlines(server: http.Server | http2.Http2SecureServer): () => void {
  server.emit("listening");
  const checker = Object.getOwnPropertySymbols(server).find(
    (s) => s.description === "http.server.connectionsCheckingInterval",
  );
  const interval = checker && (server as unknown as Record<symbol, NodeJS.Timeout | undefined>)[checker];
  if (!interval)
    throw new Error(
      "this Node.js does not start HTTP/1.1 request deadlines on 'listening'; refusing to run without them",
    );
  return () => clearInterval(interval);
}

/** Counts open connections per client address; `admit` refuses one over the cap by closing it at once. */
export class AddressCap {
  readonly #open = new Map<string, number>();
  readonly #warned = new Set<string>();

  constructor(
    private readonly max: number,
    private readonly logger: Logger,
  ) {}

  admit(socket: Socket): boolean {
    if (this.max <= 0) return true;
    const address = (socket.remoteAddress ?? "unknown").replace(/^::ffff:/, "");
    const open = this.#open.get(address) ?? 0;
    if (open >= this.max) {
      // one line per address while it stays at the cap, not one per refused connection
      if (!this.#warned.has(address)) {
        this.#warned.add(address);
        this.logger.warn({ address, max: this.max }, "connection refused: too many open connections from this address");
      }
      socket.destroy();
      return false;
    }
    this.#open.set(address, open + 1);
    socket.once("close", () => {
      const left = (this.#open.get(address) ?? 1) - 1;
      if (left > 0) this.#open.set(address, left);
      else {
        this.#open.delete(address);
        this.#warned.delete(address);
      }
    });
    return true;
  }
}

/** How long a client may keep its side of a stream open once the answer is complete. */
const answeredGraceMs = 1_000;

/**
 * HTTP/2: a session with no open stream for `idleTimeoutMs` is sent GOAWAY and closed. A request whose body has
 * not ended `requestTimeoutMs` after it began fails with DeadlineExceeded (HTTP 408 on plain routes), then the
 * stream is reset. `streamingBody` names the paths whose request body is a stream (client- and bidi-streaming RPCs:
 * an agent's NodeService.Connect lasts for hours), which have no body deadline.
 */
export function enforceHttp2Limits(
  server: http2.Http2Server | http2.Http2SecureServer,
  limits: ConnectionLimits,
  streamingBody: (path: string) => boolean,
): void {
  server.on("session", (session: http2.ServerHttp2Session) => {
    let open = 0;
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      idle = setTimeout(() => {
        if (open === 0 && !session.closed && !session.destroyed) session.close();
      }, limits.idleTimeoutMs).unref();
    };
    arm();
    session.on("stream", (stream: http2.ServerHttp2Stream) => {
      open++;
      clearTimeout(idle);
      stream.once("close", () => {
        if (--open === 0 && !session.closed) arm();
      });
      // answered but the client still has its side open (a bidi stream ended by the server, an early answer):
      // ask it to stop (RFC 9113 8.1), or the stream would count against the limit, and keep the session busy, forever
      stream.once("finish", () => {
        setTimeout(() => {
          if (!stream.closed && !stream.state.remoteClose) stream.close(http2.constants.NGHTTP2_NO_ERROR);
        }, answeredGraceMs).unref();
      });
    });
    session.once("close", () => clearTimeout(idle));
  });
  server.on("request", (req: http2.Http2ServerRequest | http.IncomingMessage, res: http2.Http2ServerResponse) => {
    // TLS's HTTP/1.1 requests come here too: Node's requestTimeout covers those
    if (!(req instanceof http2.Http2ServerRequest)) return;
    const stream = req.stream;
    if (stream.endAfterHeaders || streamingBody((req.url ?? "").split("?")[0]!)) return;
    const timer = setTimeout(() => expire(req, res, limits.requestTimeoutMs), limits.requestTimeoutMs).unref();
    stream.once("close", () => clearTimeout(timer));
  });
}

function expire(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, ms: number): void {
  const stream = req.stream;
  if (stream.destroyed || stream.state.remoteClose || res.headersSent) return;
  // the body ends in this error: whoever reads it answers (Connect: DeadlineExceeded; Fastify: statusCode 408)
  const error = Object.assign(new ConnectError(`the request did not arrive within ${ms} ms`, Code.DeadlineExceeded), {
    statusCode: 408,
  });
  if (req.listenerCount("error") === 0) req.once("error", () => {});
  req.destroy(error);
  // the answer's end resets the stream (see "finish" above); one nobody answers is reset all the same
  setTimeout(() => {
    if (!stream.headersSent) stream.close(http2.constants.NGHTTP2_CANCEL);
  }, answeredGraceMs).unref();
}
