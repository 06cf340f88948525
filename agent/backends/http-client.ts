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

/** A response whose status and headers arrived; its body is still to be read (or dropped with `release`). */
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
  const pool = new Pool();
  const send = (url: string, call: HttpCall): Promise<HttpAnswer> => {
    let target: Target;
    try {
      target = targetOf(url);
    } catch (error) {
      return Promise.reject(error);
    }
    if (pool.closed) return Promise.reject(new Error("the HTTP client is closed"));
    if (call.signal?.aborted) return Promise.reject(call.signal.reason);
    const options: Dispatcher.DispatchOptions = {
      path: target.path,
      method: call.method ?? (call.body === undefined ? "GET" : "POST"),
      headers: call.headers ?? {},
      body: call.body ?? null,
    };
    return new Promise((resolve, reject) => new Exchange(pool, target.origin, options, call.signal, resolve, reject));
  };
  return Object.assign(send, { close: () => pool.close() });
}

class Pool {
  readonly #idle = new Map<string, Connection[]>();
  readonly #all = new Set<Connection>();
  closed = false;

  take(origin: string): Connection {
    const idle = this.#idle.get(origin)?.pop();
    if (idle) return idle;
    // no timeouts of undici's own (300 s for the headers and between body reads): a long prompt on a slow machine may
    // take longer to its first byte; the task's deadline and cancellation (the call's signal) end a request instead
    const client = new Client(origin, { pipelining: 1, headersTimeout: 0, bodyTimeout: 0 });
    const connection: Connection = { client, reused: false };
    // a socket closed while idle (its keep-alive timeout) is replaced by a fresh one on the next request
    connection.client.on("disconnect", () => {
      connection.reused = false;
    });
    this.#all.add(connection);
    return connection;
  }

  giveBack(origin: string, connection: Connection): void {
    connection.reused = true;
    if (this.closed) {
      this.drop(connection);
      return;
    }
    let list = this.#idle.get(origin);
    if (!list) this.#idle.set(origin, (list = []));
    list.push(connection);
  }

  drop(connection: Connection): void {
    this.#all.delete(connection);
    void connection.client.destroy().catch(() => {});
  }

  close(): void {
    this.closed = true;
    this.#idle.clear();
    for (const connection of [...this.#all]) this.drop(connection);
  }
}

/**
 * One request on one connection, as undici's parser reports it. A failure before the answer on a reused connection
 * goes again once on another (see RESET_CODES).
 */
class Exchange implements Dispatcher.DispatchHandler {
  readonly body = new Channel<Buffer>();
  readonly #connection: Connection;
  #controller: Dispatcher.DispatchController | undefined;
  #answered = false;
  #released = false;
  #ended = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly origin: string,
    private readonly options: Dispatcher.DispatchOptions,
    private readonly signal: AbortSignal | undefined,
    private readonly resolve: (answer: HttpAnswer) => void,
    private readonly reject: (error: unknown) => void,
    private readonly retried = false,
  ) {
    this.#connection = pool.take(origin);
    this.#connection.client.dispatch(options, this);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.signal?.aborted) controller.abort(this.signal.reason);
    else this.signal?.addEventListener("abort", this, { once: true });
  }

  /** The call's signal aborted (an EventListener object: `this` is the listener). */
  handleEvent(): void {
    this.#controller?.abort(this.signal!.reason);
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
    const exchange = this;
    this.resolve({
      status,
      statusText: statusMessage ?? "",
      contentType: typeof type === "string" ? type : "",
      body: this.body,
      text() {
        return exchange.text();
      },
      release() {
        exchange.release();
      },
    });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#released || !this.body.push(chunk)) return;
    if (this.body.queued > HIGH_WATER && !controller.paused) {
      controller.pause();
      this.body.onDrained(() => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.#settle();
    this.body.close();
    this.pool.giveBack(this.origin, this.#connection);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#settle();
    this.pool.drop(this.#connection);
    // an abort ends with the signal's reason, like fetch, so callers can tell a cancellation from a failure
    const reason = this.signal?.aborted ? (this.signal.reason ?? error) : error;
    if (this.#answered) {
      this.body.close(reason);
      return;
    }
    // a kept-alive connection the server closed just as it was reused (its idle timeout): nothing reached the
    // server, so the request goes again once on a new connection; never after a fresh connection's failure
    const code = (reason as { code?: unknown }).code;
    if (!this.retried && this.#connection.reused && typeof code === "string" && RESET_CODES.has(code)) {
      new Exchange(this.pool, this.origin, this.options, this.signal, this.resolve, this.reject, true);
    } else this.reject(reason);
  }

  async text(): Promise<string> {
    const parts: Buffer[] = [];
    for await (const part of this.body) parts.push(part);
    return Buffer.concat(parts).toString("utf8");
  }

  release(): void {
    if (this.#released || this.#ended) return;
    this.#released = true;
    this.body.close();
    if (this.#controller?.paused) this.#controller.resume();
    this.#timer = setTimeout(() => this.#controller?.abort(new Error("the released answer did not end")), RELEASE_MS);
    this.#timer.unref();
  }

  #settle(): void {
    this.#ended = true;
    clearTimeout(this.#timer);
    this.signal?.removeEventListener("abort", this);
  }
}
