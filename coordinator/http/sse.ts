// A server-sent events response written straight to the socket: headers on demand, no buffering, backpressure.
import type { FastifyReply, FastifyRequest } from "fastify";

export class SseResponse {
  #committed = false;

  constructor(
    private readonly req: FastifyRequest,
    private readonly reply: FastifyReply,
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
   * Sends the status and headers. Fastify steps aside from here on (hijack), so headers it was told about
   * earlier (x-request-id) are copied over.
   */
  commit(extraHeaders: Record<string, string> = {}): void {
    if (this.#committed) return;
    this.#committed = true;
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

  end(): void {
    if (this.open) this.reply.raw.end();
  }

  /** Writes now; waits only when the socket's buffer is full (a slow reader), or not at all once the client left. */
  async #write(text: string): Promise<void> {
    this.commit();
    const raw = this.reply.raw;
    if (!this.open || raw.write(text)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        raw.off("drain", done);
        raw.off("close", done);
        resolve();
      };
      raw.on("drain", done);
      raw.on("close", done);
    });
  }
}
