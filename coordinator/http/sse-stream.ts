// The one server-sent events writer of the HTTP chat routes: headers when the route commits, writes to the socket
// (corked per event-loop turn, backpressure), keep-alive comments, the error event, letting go of the answer's events.
import type { FastifyReply, FastifyRequest } from "fastify";
import { drained } from "../../common/drained.ts";

/** How a route puts its events on the wire (docs/reference/sse.md): each its own format, one writer. */
export interface SseRoute<E> {
  /** Writes one event; the first write commits the 200 unless the route committed (with headers) before. */
  write(event: E): Promise<void>;
  /** The comment to send after keepAliveMs without an event; undefined sends none (and so holds the status). */
  idle(): string | undefined;
  /** Writes the route's error event for a failure after the commit (before it, the route answers with a status). */
  failed(err: unknown): Promise<void>;
  /** After the last event (OpenAI's `data: [DONE]`). */
  finish?(): Promise<void>;
}

export class SseStream {
  #committed = false;
  #corked = false;

  constructor(
    private readonly req: FastifyRequest,
    private readonly reply: FastifyReply,
    private readonly keepAliveMs: number,
  ) {}

  /** Whether the 200 and the headers went out (after that, failures can only be events). */
  get committed(): boolean {
    return this.#committed;
  }

  /** False once the client is gone (or the response ended): nothing more can be written. */
  get open(): boolean {
    return !this.reply.raw.destroyed && !this.reply.raw.writableEnded;
  }

  /**
   * Sends `events` until they end, each through `route`. A failure before the commit is thrown, so the route's
   * error handler answers with a real HTTP status; after it, `route.failed` writes the error event. However it
   * ends (the client gone included: its call's signal fails the events), the events are closed, so the
   * orchestrator lets go of the node, and the response ends.
   */
  async send<E>(events: AsyncGenerator<E>, route: SseRoute<E>): Promise<void> {
    // one keep-alive timer for the whole stream, pushed back by every event (not a timer and a race per event);
    // it writes its comment only while the loop waits for the next event, so it never splits one
    let waiting = false;
    const keepAlive: NodeJS.Timeout = setTimeout(() => {
      if (waiting) {
        const comment = route.idle();
        if (comment !== undefined) void this.comment(comment);
      }
      keepAlive.refresh();
    }, this.keepAliveMs);
    try {
      for (;;) {
        waiting = true;
        const step = await events.next();
        waiting = false;
        keepAlive.refresh();
        if (step.done) break;
        await route.write(step.value);
      }
      await route.finish?.();
    } catch (err) {
      waiting = false;
      if (!this.#committed) throw err;
      await route.failed(err);
    } finally {
      clearTimeout(keepAlive);
      await events.return(undefined);
      if (this.#committed && this.open) this.reply.raw.end();
    }
  }

  /**
   * Sends the status and headers. Fastify steps aside from here on (hijack), so headers it was told about
   * earlier (x-request-id) are copied over.
   */
  commit(extraHeaders: Record<string, string> = {}): void {
    if (this.#committed) return;
    this.#committed = true;
    // the headers go out with the events of this turn (OpenAI's role chunk follows them at once)
    this.#cork();
    this.reply.hijack();
    const raw = this.reply.raw;
    const headers: Record<string, string | number | string[]> = {
      ...(this.reply.getHeaders() as Record<string, string | number | string[]>),
      ...extraHeaders,
      "content-type": "text/event-stream; charset=utf-8",
      // no-transform: proxies must not compress (and so buffer) the stream; X-Accel-Buffering: no for nginx
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
    };
    // HTTP/2 forbids connection-specific headers (Node throws on them)
    if (this.req.raw.httpVersionMajor === 1) {
      headers.connection = "keep-alive";
      // each token is a small write: Nagle's algorithm would hold it back waiting for an ACK
      this.req.raw.socket?.setNoDelay?.(true);
    }
    raw.writeHead(200, headers);
    raw.flushHeaders();
  }

  /**
   * The events written in one event-loop turn (a token, the finish chunk, usage and [DONE] arriving together) go out
   * in one socket write and one TCP segment, not one each: corked now, uncorked once the turn's I/O is handled.
   */
  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    const raw = this.reply.raw;
    raw.cork();
    setImmediate(() => {
      this.#corked = false;
      raw.uncork();
    });
  }

  /** A comment line: clients ignore it, proxies see traffic (keeps idle timeouts away). */
  comment(text: string): Promise<void> {
    return this.#write(`: ${text}\n\n`);
  }

  /** One `data:` event; objects are sent as JSON (one line: JSON.stringify never emits raw newlines). */
  data(payload: unknown): Promise<void> {
    return this.#write(`data: ${typeof payload === "string" ? payload : JSON.stringify(payload)}\n\n`);
  }

  /** One named event (`event: <name>` then its `data:` line), for clients that dispatch on the event's name. */
  event(name: string, payload: unknown): Promise<void> {
    return this.#write(`event: ${name}\ndata: ${typeof payload === "string" ? payload : JSON.stringify(payload)}\n\n`);
  }

  /** Writes now; waits only when the socket's buffer is full (a slow reader), or not at all once the client left. */
  async #write(text: string): Promise<void> {
    this.commit();
    const raw = this.reply.raw;
    if (!this.open) return;
    this.#cork();
    if (!raw.write(text)) await drained(raw);
  }
}
