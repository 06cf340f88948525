// A cluster bus that loses the messages a test says, as core NATS may (at most once: across a reconnect, what was in
// flight is gone): for the node view's resync tests, over the in-process bus and over NATS alike.
import type { Bus } from "../../coordinator/cluster/bus.ts";

/** `bus`, losing the next `state.lose` messages it publishes on `subject` (after letting `state.after` more pass). */
export function lossyBus(bus: Bus, subject: string): { bus: Bus; state: { lose: number; after: number } } {
  const state = { lose: 0, after: 0 };
  const wrapped: Bus = {
    kind: bus.kind,
    publish: (to, data) => {
      if (to !== subject || state.lose === 0) bus.publish(to, data);
      else if (state.after > 0) {
        state.after--;
        bus.publish(to, data);
      } else state.lose--;
    },
    subscribe: (to, handler) => bus.subscribe(to, handler),
    serve: (to, responder) => bus.serve(to, responder),
    request: (to, data, timeoutMs) => bus.request(to, data, timeoutMs),
    flush: () => bus.flush(),
    close: () => bus.close(),
  };
  return { bus: wrapped, state };
}
