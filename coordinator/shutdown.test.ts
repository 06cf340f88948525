// Shutdown over real sockets: idle agents' streams do not hold it, user requests still finish, agents are told to
// reconnect.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { describe, expect, it } from "vitest";
import { Health } from "../gen/grpc/health/v1/health_pb.ts";
import { InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { newAccountKey, startTestCoordinator } from "../test/support/coordinator.ts";
import { connectFailure } from "../test/support/errors.ts";
import { until } from "../test/support/raw-connection.ts";
import { startScriptedNode } from "../test/support/scripted-node.ts";

const SHUTDOWN_TIMEOUT_MS = 20_000;

describe("shutdown with agents connected", () => {
  it("does not wait for idle agents' streams, and ends them with Unavailable 'reconnect'", async () => {
    const coordinator = await startTestCoordinator({ SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) });
    const accountKey = await newAccountKey(coordinator.url);
    const nodes = ["idle-1", "idle-2"].map((nodeId) =>
      startScriptedNode({ baseUrl: coordinator.url, accountKey, nodeId }),
    );
    await Promise.all(nodes.map((node) => node.registered));
    expect(coordinator.registry.size).toBe(2);

    const started = performance.now();
    await coordinator.close();
    const closeMs = performance.now() - started;
    console.log(
      `shutdown with 2 idle agent streams: ${closeMs.toFixed(0)} ms (SHUTDOWN_TIMEOUT_MS ${SHUTDOWN_TIMEOUT_MS})`,
    );

    expect(closeMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS / 2);
    for (const node of nodes) {
      const err = ConnectError.from(await node.ended);
      expect(err.code).toBe(Code.Unavailable);
      expect(err.rawMessage).toMatch(/shutting down; reconnect/);
    }
    expect(coordinator.registry.size).toBe(0);
    expect(coordinator.logs.some((line) => line.msg === "ending agents' streams: they reconnect elsewhere")).toBe(true);
    // the agents' session ends were written before the database closed
    expect(coordinator.logs.filter((line) => (line.level as number) >= 50)).toEqual([]);
    expect(coordinator.logs.filter((line) => line.msg === "node disconnected")).toHaveLength(2);
  });

  it("lets an in-flight chat finish, refuses new work meanwhile, then exits without the timeout", async () => {
    const coordinator = await startTestCoordinator({ SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) });
    const accountKey = await newAccountKey(coordinator.url);
    const tokens = ["one", " two", " three", " four"];
    const node = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId: "busy",
      script: () => ({ tokens, delayMs: 250 }),
    });
    await node.registered;
    const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
    const chatStarted = performance.now();
    const answer = (async () => {
      let text = "";
      for await (const response of inference.chat({
        params: { messages: [{ role: 2, content: "Say four words." }] },
      })) {
        if (response.event.case === "token") text += response.event.value.text;
      }
      return { text, doneAt: performance.now() };
    })();
    await until(() => node.assigns.length === 1);

    const closeStarted = performance.now();
    const closing = coordinator.close();
    // the listener is closed at once: a new caller is refused while the chat goes on
    const refused = await connectFailure(
      createClient(Health, createConnectTransport({ baseUrl: coordinator.url, httpVersion: "1.1" })).check({}),
    );
    expect(refused.code).toBe(Code.Unavailable);

    const { text, doneAt } = await answer;
    await closing;
    const closedAt = performance.now();
    console.log(
      `shutdown during a ${(doneAt - chatStarted).toFixed(0)} ms chat: ` +
        `closed ${(closedAt - closeStarted).toFixed(0)} ms after close(), ` +
        `${(closedAt - doneAt).toFixed(0)} ms after the chat ended`,
    );

    expect(text).toBe(tokens.join(""));
    expect(closedAt - closeStarted).toBeLessThan(SHUTDOWN_TIMEOUT_MS / 2);
    expect(closedAt).toBeGreaterThanOrEqual(doneAt);
    const err = ConnectError.from(await node.ended);
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toMatch(/reconnect/);
  });
});
