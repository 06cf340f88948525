// The in-process bus: a single coordinator without NATS_URL, and tests that put several coordinators in one process
// (each its own LocalBus on one shared LocalNetwork). Delivery is a microtask later and in publish order, as over a
// network; a bus never hears its own messages, and closing one removes only its own subscriptions, as with NATS.
import { BusError, type Bus, type BusHandler, type BusResponder } from "./bus.ts";

/** The "server" several LocalBus connections share. */
export class LocalNetwork {
  readonly handlers = new Map<string, Set<BusHandler>>();
  readonly responders = new Map<string, BusResponder[]>();
}

export class LocalBus implements Bus {
  readonly kind = "local" as const;
  readonly #own = new Set<() => void>();
  /** This bus's handlers and responders: what it publishes or asks is not for them (NATS's noEcho). */
  readonly #mine = new Set<BusHandler | BusResponder>();
  #closed = false;

  constructor(private readonly network = new LocalNetwork()) {}

  publish(subject: string, data: Uint8Array): void {
    if (this.#closed) return;
    const handlers = this.network.handlers.get(subject);
    if (!handlers || handlers.size === 0) return;
    // a copy each, so no subscriber sees another's changes to the bytes
    for (const handler of [...handlers]) if (!this.#mine.has(handler)) queueMicrotask(() => handler(data.slice()));
  }

  subscribe(subject: string, handler: BusHandler): () => void {
    const handlers = this.network.handlers.get(subject) ?? new Set<BusHandler>();
    this.network.handlers.set(subject, handlers);
    // wrapped, so subscribing the same function twice hears each message twice, as NATS would
    const own: BusHandler = (data) => handler(data);
    handlers.add(own);
    this.#mine.add(own);
    return this.#track(() => {
      handlers.delete(own);
      this.#mine.delete(own);
    });
  }

  serve(subject: string, responder: BusResponder): () => void {
    const responders = this.network.responders.get(subject) ?? [];
    this.network.responders.set(subject, responders);
    const own: BusResponder = (data) => responder(data);
    responders.push(own);
    this.#mine.add(own);
    return this.#track(() => {
      const index = responders.indexOf(own);
      if (index >= 0) responders.splice(index, 1);
      this.#mine.delete(own);
    });
  }

  async request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.#closed) throw new BusError("closed", "the bus is closed");
    const responder = this.network.responders.get(subject)?.find((r) => !this.#mine.has(r));
    if (!responder) throw new BusError("no-responders", `no one serves ${subject}`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new BusError("timeout", `no reply on ${subject} within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      await Promise.resolve(); // answered a tick later, as over a network
      return await Promise.race([Promise.resolve(responder(data.slice())), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.#closed = true;
    for (const unsubscribe of [...this.#own]) unsubscribe();
  }

  #track(unsubscribe: () => void): () => void {
    const once = () => {
      if (this.#own.delete(once)) unsubscribe();
    };
    this.#own.add(once);
    return once;
  }
}
