// Shutdown bookkeeping in memory: user work vs background streams, and streams ended by the shutdown signal.
import { EventEmitter } from "node:events";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../gen/grpc/health/v1/health_pb.ts";
import { endStreamsOn, RequestTracker } from "./drain.ts";

describe("RequestTracker", () => {
  it("counts background paths apart from user work and wakes waiters as requests close", async () => {
    const tracker = new RequestTracker(new Set(["/iris.v1.NodeService/Connect"]));
    const agent = new EventEmitter();
    const chat = new EventEmitter();
    tracker.track("/iris.v1.NodeService/Connect", agent);
    tracker.track("/v1/chat/completions?stream=true", chat);
    expect([tracker.user, tracker.background]).toEqual([1, 1]);

    const userDone = tracker.until((t) => t.user === 0, 5_000);
    chat.emit("close");
    expect(await userDone).toBe(true);
    expect(await tracker.until((t) => t.background === 0, 20)).toBe(false);
    agent.emit("close");
    expect([tracker.user, tracker.background]).toEqual([0, 0]);
  });
});

describe("endStreamsOn", () => {
  function watchingClient(shutdown: AbortSignal, { hang }: { hang: boolean }) {
    return createClient(
      Health,
      createRouterTransport(
        (router) =>
          router.service(Health, {
            // a handler that never looks at its signal, as an agent's stream waiting on its outbox
            async *watch() {
              yield { status: Serving.SERVING };
              if (hang) await new Promise(() => {});
            },
          }),
        { router: { interceptors: [endStreamsOn(shutdown)] } },
      ),
    );
  }

  it("ends a stream whose handler waits forever with the abort reason", async () => {
    const shutdown = new AbortController();
    const seen: Serving[] = [];
    const client = watchingClient(shutdown.signal, { hang: true });
    const watching = (async () => {
      for await (const update of client.watch({})) {
        seen.push(update.status);
        shutdown.abort(new ConnectError("the coordinator is shutting down; reconnect", Code.Unavailable));
      }
    })();
    const err = await watching.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(seen).toEqual([Serving.SERVING]);
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toBe("the coordinator is shutting down; reconnect");
  });

  it("leaves no listener on the shutdown signal once a stream is over", async () => {
    const shutdown = new AbortController();
    let listeners = 0;
    const add = shutdown.signal.addEventListener.bind(shutdown.signal);
    const remove = shutdown.signal.removeEventListener.bind(shutdown.signal);
    shutdown.signal.addEventListener = ((...args: Parameters<typeof add>) => (listeners++, add(...args))) as typeof add;
    shutdown.signal.removeEventListener = ((...args: Parameters<typeof remove>) => (
      listeners--, remove(...args)
    )) as typeof remove;
    const client = watchingClient(shutdown.signal, { hang: false });
    for (let i = 0; i < 3; i++) {
      for await (const update of client.watch({})) expect(update.status).toBe(Serving.SERVING);
    }
    expect(listeners).toBe(0);
  });
});
