// The agent's HTTP client for its local LLM server: node:http(s) on a kept-alive connection pool. Every task is one
// POST on a socket already open; the body is read as Buffers from the socket, with no web streams or Response
// objects between (undici's fetch cost the agent about a fifth of its CPU per request: bench:peers, #13).
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";

export interface HttpCall {
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
  /** Aborting it ends the request (and closes its socket); the call rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** A response whose status and headers arrived; its body is still to be read (or dropped with `discard`). */
export interface HttpAnswer {
  status: number;
  statusText: string;
  contentType: string;
  /** The body as it arrives: Buffers, in order. Leaving the loop early does not end the response: see release. */
  body: AsyncIterable<Buffer>;
  /** The whole body as UTF-8 text. */
  text(): Promise<string>;
  /**
   * Done with the body: what is left of it is read and dropped, so the socket goes back to the pool (an answer's
   * end usually follows its last event at once); one that has not ended within a second is closed instead.
   */
  release(): void;
}

/** Sends one request; what a test wraps to change the request or watch the body. */
export type HttpTransport = (url: string, call: HttpCall) => Promise<HttpAnswer>;

/** A pool per client: keep-alive sockets, reused most-recent first so idle ones time out. */
export function createHttpTransport(): HttpTransport & { close(): void } {
  const options = { keepAlive: true, keepAliveMsecs: 1_000, scheduling: "lifo" as const };
  const http = new HttpAgent(options);
  const https = new HttpsAgent(options);
  const transport = (url: string, call: HttpCall) => send(url, call, http, https);
  return Object.assign(transport, {
    close: () => {
      http.destroy();
      https.destroy();
    },
  });
}

/** Where a URL points, parsed once: a backend calls the same two or three URLs for its whole life. */
interface Target {
  secure: boolean;
  hostname: string;
  port: string;
  path: string;
}
const targets = new Map<string, Target>();

function targetOf(url: string): Target {
  let target = targets.get(url);
  if (target) return target;
  const parsed = new URL(url);
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw new Error(`unsupported protocol ${parsed.protocol} in ${url}`);
  }
  target = {
    secure: parsed.protocol === "https:",
    // node:http wants an IPv6 literal without its brackets
    hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: parsed.port,
    path: parsed.pathname + parsed.search,
  };
  if (targets.size < 64) targets.set(url, target);
  return target;
}

function send(url: string, call: HttpCall, http: HttpAgent, https: HttpsAgent): Promise<HttpAnswer> {
  let target: Target;
  try {
    target = targetOf(url);
  } catch (error) {
    return Promise.reject(error);
  }
  const headers: Record<string, string | number> = { ...call.headers };
  if (call.body !== undefined) headers["content-length"] = Buffer.byteLength(call.body);
  const options = {
    hostname: target.hostname,
    port: target.port,
    path: target.path,
    method: call.method ?? (call.body === undefined ? "GET" : "POST"),
    headers,
    signal: call.signal,
    agent: target.secure ? https : http,
  };
  const attempt = (retried: boolean) =>
    new Promise<HttpAnswer>((resolve, reject) => {
      let responded = false;
      const request = (target.secure ? httpsRequest : httpRequest)(options, (response) => {
        responded = true;
        resolve(answer(response));
      });
      request.on("error", (error: NodeJS.ErrnoException) => {
        // an abort rejects with the signal's reason, like fetch, so callers can tell a cancellation from a failure
        if (call.signal?.aborted) return reject(call.signal.reason ?? error);
        // a kept-alive socket the server closed just as it was reused (its idle timeout): nothing reached the server,
        // so the request goes again once on a new connection (node:http's documented `reusedSocket` case)
        const reset = error.code === "ECONNRESET" || error.code === "EPIPE";
        if (!retried && !responded && request.reusedSocket && reset) {
          return resolve(attempt(true));
        }
        reject(error);
      });
      request.setNoDelay(true);
      request.end(call.body);
    });
  return attempt(false);
}

/** How long a released body may take to end before its socket is closed rather than reused. */
const RELEASE_MS = 1_000;

function answer(response: IncomingMessage): HttpAnswer {
  const type = response.headers["content-type"];
  return {
    status: response.statusCode ?? 0,
    statusText: response.statusMessage ?? "",
    contentType: typeof type === "string" ? type : "",
    body: response.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>,
    async text() {
      const parts: Buffer[] = [];
      for await (const part of response) parts.push(part as Buffer);
      return Buffer.concat(parts).toString("utf8");
    },
    release() {
      if (response.complete || response.destroyed) return;
      const timer = setTimeout(() => response.destroy(), RELEASE_MS);
      timer.unref();
      response.once("close", () => clearTimeout(timer));
      response.resume();
    },
  };
}
