// The NATS bus: core NATS publish/subscribe and request/reply (no JetStream), binary payloads as they are.
import { connect, errors, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { BusError, type Bus, type BusHandler, type BusResponder } from "./bus.ts";

export interface NatsBusOptions {
  /** NATS_URL: one or more servers, comma-separated (nats://host:4222). */
  servers: string;
  /** The connection's name on the server (its monitoring pages show it): the coordinator instance. */
  name: string;
  logger: Logger;
  /** How long the first connection may take before start-up fails (ms). */
  connectTimeoutMs?: number;
}

/** How long closing waits for the server to take what is queued before it just closes (ms). */
const CLOSE_TIMEOUT_MS = 2_000;

export class NatsBus implements Bus {
  readonly kind = "nats" as const;
  /** Publishes of this turn of the event loop, written together (see publish). */
  #pending: [subject: string, data: Uint8Array][] = [];
  readonly #flushPending = () => this.#write();

  private constructor(
    private readonly connection: NatsConnection,
    private readonly logger: Logger,
  ) {}

  static async connect(options: NatsBusOptions): Promise<NatsBus> {
    const servers = options.servers
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
    const connection = await connect({
      servers,
      name: options.name,
      timeout: options.connectTimeoutMs ?? 5_000,
      // a NATS restart must not end the coordinator: it reconnects for as long as it runs
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      // a coordinator ignores its own views and queues: the server need not send them back to it
      noEcho: true,
      // no Error (a stack trace) made up front for each request, in case it fails: the assign is on every chat's path
      noAsyncTraces: true,
    });
    const bus = new NatsBus(connection, options.logger);
    void bus.#watch();
    return bus;
  }

  /**
   * Queued, and handed to the client together at the end of this turn of the event loop: the client writes to its
   * socket once per microtask checkpoint, so a node's chunks relayed one by one (each its own microtask) would
   * otherwise cost a socket write, and a wake-up of the server and of the receiver, each. Sends (requests, replies)
   * write what is queued first, so everything leaves in the order it was sent.
   */
  publish(subject: string, data: Uint8Array): void {
    if (this.connection.isClosed() || this.connection.isDraining()) return;
    if (this.#pending.push([subject, data]) === 1) setImmediate(this.#flushPending);
  }

  #write(): void {
    const pending = this.#pending;
    if (pending.length === 0) return;
    this.#pending = [];
    if (this.connection.isClosed()) return;
    for (const [subject, data] of pending) {
      try {
        this.connection.publish(subject, data);
      } catch (err) {
        // e.g. a payload over the server's max_payload: that message is lost (as core NATS may lose any), not the
        // coordinator (this runs from setImmediate, where a throw would end the process)
        this.logger.error({ err, subject, bytes: data.length }, "cluster bus: a message could not be published");
      }
    }
  }

  subscribe(subject: string, handler: BusHandler): () => void {
    const subscription = this.connection.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return this.logger.error({ err, subject }, "cluster bus subscription failed");
        handler(msg.data);
      },
    });
    return () => subscription.unsubscribe();
  }

  serve(subject: string, responder: BusResponder): () => void {
    const subscription = this.connection.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return this.logger.error({ err, subject }, "cluster bus responder failed");
        // answered now, in the order the messages came: deferred, a request would be answered after the messages
        // behind it in the same read (a home applied a peer's queue change, which said its waiter had taken the slot,
        // before that waiter's assign, and gave the slot to a later waiter of its own)
        let answer: Promise<Uint8Array>;
        try {
          answer = Promise.resolve(responder(msg.data));
        } catch (error) {
          answer = Promise.reject(error);
        }
        answer.then(
          (reply) => {
            this.#write();
            try {
              msg.respond(reply);
            } catch (err) {
              this.logger.error({ err, subject, bytes: reply.length }, "cluster bus: a reply could not be sent");
            }
          },
          (error: unknown) =>
            this.logger.error({ err: error, subject }, "cluster bus request handler threw; no reply sent"),
        );
      },
    });
    return () => subscription.unsubscribe();
  }

  async request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    this.#write();
    const limit = this.connection.info?.max_payload;
    if (limit !== undefined && data.length > limit)
      throw new BusError(
        "too-large",
        `${data.length} bytes for ${subject}: more than the NATS server takes in one message (max_payload ${limit})`,
      );
    try {
      return (await this.connection.request(subject, data, { timeout: timeoutMs })).data;
    } catch (err) {
      if (err instanceof errors.NoRespondersError) throw new BusError("no-responders", `no one serves ${subject}`);
      if (err instanceof errors.TimeoutError)
        throw new BusError("timeout", `no reply on ${subject} within ${timeoutMs} ms`);
      if (err instanceof errors.ClosedConnectionError || err instanceof errors.DrainingConnectionError)
        throw new BusError("closed", "the bus is closed");
      // a request that failed inside the client (e.g. the server went away mid-request) wraps the cause
      if (err instanceof errors.RequestError) {
        if (err.isNoResponders()) throw new BusError("no-responders", `no one serves ${subject}`);
        throw new BusError("timeout", `request on ${subject} failed: ${err.message}`);
      }
      throw err;
    }
  }

  async flush(): Promise<void> {
    this.#write();
    await this.connection.flush();
  }

  async close(): Promise<void> {
    if (this.connection.isClosed()) return;
    this.#write();
    // a drain waits for the server: with NATS away, shutdown must not wait for it to come back
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), CLOSE_TIMEOUT_MS)));
    const drained = await Promise.race([
      this.connection.drain().then(
        () => "drained" as const,
        () => "failed" as const,
      ),
      late,
    ]);
    clearTimeout(timer);
    if (drained !== "drained") await this.connection.close();
  }

  /** Logs disconnects and reconnects: while NATS is away the coordinator serves its own nodes only. */
  async #watch(): Promise<void> {
    for await (const status of this.connection.status()) {
      if (status.type === "disconnect")
        this.logger.warn({ server: status.server }, "cluster bus: lost NATS; reconnecting");
      else if (status.type === "reconnect")
        this.logger.info({ server: status.server }, "cluster bus: NATS reconnected");
    }
  }
}
