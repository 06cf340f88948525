// The agent's HTTP client for its local LLM server: undici's core (not its fetch) on kept-alive connections of our
// own. Every task is one POST on a connection already open; the body arrives as Buffers pushed by undici's parser,
// with no web streams, Response objects or node:http message streams between (undici's fetch cost the agent about a
// fifth of its CPU per request, node:http's client a third more than this one: bench:peers, #13).
import type { IncomingHttpHeaders } from "node:http";
import { Client, type Dispatcher } from "undici";
import { Channel } from "../../common/channel.ts";

export interface HttpCall {
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: string;
  /** Aborting it ends the request (and closes its connection); the call rejects with the signal's reason. */
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
   * Done with the body: what is left of it is read and dropped, so the connection goes back to the pool (an answer's
   * end usually follows its last event at once); one that has not ended within a second is closed instead.
   */
  release(): void;
}

/** Sends one request; what a test wraps to change the request or watch the body. */
export type HttpTransport = (url: string, call: HttpCall) => Promise<HttpAnswer>;

/** How long a released body may take to end before its connection is closed rather than reused. */
const RELEASE_MS = 1_000;
/** Body pieces read ahead of the consumer before the connection is paused. */
const HIGH_WATER = 64;
/** Errors of a kept-alive connection the server closed as a request went out on it. */
const RESET_CODES = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE"]);

/** One kept-alive connection: an undici Client that runs one request at a time. */
interface Connection {
  client: Client;
  /** Its current socket has carried a whole answer already (a reset now is the server's idle close racing us). */
  reused: boolean;
}

/** Where a URL points, parsed once: a backend calls the same two or three URLs for its whole life. */
interface Target {
  origin: string;
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
  target = { origin: parsed.origin, path: parsed.pathname + parsed.search };
  if (targets.size < 64) targets.set(url, target);
  return target;
}

/** A pool per client: idle connections by origin, reused most-recent first so that idle ones time out. */
export function createHttpTransport(): HttpTransport & { close(): void } {
  const idle = new Map<string, Connection[]>();
  const all = new Set<Connection>();
  let closed = false;

  const open = (origin: string): Connection => {
    const connection: Connection = { client: new Client(origin, { pipelining: 1 }), reused: false };
    // a socket closed while idle (its keep-alive timeout) is replaced by a fresh one on the next request
    connection.client.on("disconnect", () => {
      connection.reused = false;
    });
    all.add(connection);
    return connection;
  };
  const take = (origin: string) => idle.get(origin)?.pop() ?? open(origin);
  const giveBack = (origin: string, connection: Connection) => {
    connection.reused = true;
    if (closed) return drop(connection);
    let list = idle.get(origin);
    if (!list) idle.set(origin, (list = []));
    list.push(connection);
  };
  const drop = (connection: Connection) => {
    all.delete(connection);
    void connection.client.destroy().catch(() => {});
  };

  const send = (url: string, call: HttpCall): Promise<HttpAnswer> => {
    let target: Target;
    try {
      target = targetOf(url);
    } catch (error) {
      return Promise.reject(error);
    }
    if (closed) return Promise.reject(new Error("the HTTP client is closed"));
    if (call.signal?.aborted) return Promise.reject(call.signal.reason);
    const options: Dispatcher.DispatchOptions = {
      path: target.path,
      method: call.method ?? (call.body === undefined ? "GET" : "POST"),
      headers: call.headers ?? {},
      body: call.body ?? null,
    };
    const attempt = (retried: boolean) =>
      new Promise<HttpAnswer>((resolve, reject) => {
        const connection = take(target.origin);
        const pool = { giveBack: () => giveBack(target.origin, connection), drop: () => drop(connection) };
        const exchange = new Exchange(call.signal, pool, resolve, (error) => {
          // a kept-alive connection the server closed just as it was reused (its idle timeout): nothing reached the
          // server, so the request goes again once on a new connection; never after a fresh connection's failure
          const code = (error as { code?: unknown }).code;
          if (!retried && connection.reused && typeof code === "string" && RESET_CODES.has(code)) {
            resolve(attempt(true));
          } else reject(error);
        });
        connection.client.dispatch(options, exchange);
      });
    return attempt(false);
  };

  return Object.assign(send, {
    close: () => {
      closed = true;
      idle.clear();
      for (const connection of [...all]) drop(connection);
    },
  });
}

/** One request on one connection, as undici's parser reports it: its answer, its body, its end. */
class Exchange implements Dispatcher.DispatchHandler {
  readonly #body = new Channel<Buffer>();
  #controller: Dispatcher.DispatchController | undefined;
  #answered = false;
  #released = false;
  #ended = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #onAbort = () => this.#controller?.abort(this.signal!.reason);

  constructor(
    private readonly signal: AbortSignal | undefined,
    private readonly pool: { giveBack(): void; drop(): void },
    private readonly answered: (answer: HttpAnswer) => void,
    private readonly failed: (error: unknown) => void,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.signal?.aborted) controller.abort(this.signal.reason);
    else this.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    status: number,
    headers: IncomingHttpHeaders,
    statusMessage?: string,
  ): void {
    if (status < 200) return; // an informational answer; the real one follows
    this.#answered = true;
    const type = headers["content-type"];
    const body = this.#body;
    this.answered({
      status,
      statusText: statusMessage ?? "",
      contentType: typeof type === "string" ? type : "",
      body,
      async text() {
        const parts: Buffer[] = [];
        for await (const part of body) parts.push(part);
        return Buffer.concat(parts).toString("utf8");
      },
      release: () => this.#release(),
    });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#released || !this.#body.push(chunk)) return;
    if (this.#body.queued > HIGH_WATER && !controller.paused) {
      controller.pause();
      this.#body.onDrained(() => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.#settle();
    this.#body.close();
    this.pool.giveBack();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#settle();
    this.pool.drop();
    // an abort ends with the signal's reason, like fetch, so callers can tell a cancellation from a failure
    const reason = this.signal?.aborted ? (this.signal.reason ?? error) : error;
    if (this.#answered) this.#body.close(reason);
    else this.failed(reason);
  }

  /** Done with the body: the rest is dropped as it comes, and the connection closed if it does not end soon. */
  #release(): void {
    if (this.#released || this.#ended) return;
    this.#released = true;
    this.#body.close();
    if (this.#controller?.paused) this.#controller.resume();
    this.#timer = setTimeout(() => this.#controller?.abort(new Error("the released answer did not end")), RELEASE_MS);
    this.#timer.unref();
  }

  #settle(): void {
    this.#ended = true;
    clearTimeout(this.#timer);
    this.signal?.removeEventListener("abort", this.#onAbort);
  }
}
