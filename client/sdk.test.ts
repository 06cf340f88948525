// The SDK against a real coordinator and a scripted node: chat() as typed events over Connect (as browsers use it)
// and gRPC, abort reaching the node, errors as ConnectErrors, and the typed helpers for accounts and the network.
import { Code, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Tier } from "../gen/iris/v1/common_pb.ts";
import { startTestCoordinator, type TestCoordinator } from "../test/support/coordinator.ts";
import { startScriptedNode, type ScriptedNode } from "../test/support/scripted-node.ts";
import { createIrisClient, type ChatEvent } from "./sdk.ts";
import { createNodeIrisClient } from "./sdk-node.ts";

const NODE_ID = "sdk-node-1";
const LONG_ANSWER = 77;

describe("SDK", () => {
  let coordinator: TestCoordinator;
  let node: ScriptedNode;
  let accountKey: string;

  beforeAll(async () => {
    coordinator = await startTestCoordinator({
      JWT_SECRET: "sdk-test-secret-0123456789abcdefghij",
      RATE_LIMIT_ANONYMOUS_PER_DAY: "1000000",
      RATE_LIMIT_ACCOUNT_KEY_PER_DAY: "1000000",
    });
    accountKey = await createNodeIrisClient({ baseUrl: coordinator.url }).generateKey();
    node = startScriptedNode({
      baseUrl: coordinator.url,
      accountKey,
      nodeId: NODE_ID,
      script: (assign) =>
        assign.maxTokens === LONG_ANSWER
          ? { tokens: Array.from({ length: 100 }, (_, i) => ` w${i}`), delayMs: 50 }
          : { tokens: ["Bonjour", " le", " monde"], delayMs: 20 },
    });
    await node.registered;
  });
  afterAll(async () => {
    node?.kill();
    await coordinator?.close();
  });

  async function collect(events: AsyncIterable<ChatEvent>): Promise<ChatEvent[]> {
    const list: ChatEvent[] = [];
    for await (const event of events) list.push(event);
    return list;
  }

  it("streams typed events over the Connect protocol on HTTP/1.1, as a browser page does", async () => {
    const client = createIrisClient({
      baseUrl: coordinator.url,
      accountKey,
      transport: ({ baseUrl, interceptors }) => createConnectTransport({ baseUrl, interceptors, httpVersion: "1.1" }),
    });
    const events = await collect(client.chat("Translate hello to French", { maxTokens: 16 }));
    expect(events.map((e) => e.type)).toEqual(["accepted", "token", "token", "token", "done"]);
    const [accepted, , , , done] = events;
    if (accepted?.type !== "accepted" || done?.type !== "done") throw new Error("unexpected event order");
    expect(accepted.accepted).toMatchObject({ nodeId: NODE_ID, tier: Tier.MID });
    expect(events.flatMap((e) => (e.type === "token" ? [e.text] : [])).join("")).toBe("Bonjour le monde");
    expect(done.done.usage?.completionTokens).toBe(3);
    expect(node.payloads.at(-1)!.messages.map((m) => m.content)).toEqual(["Translate hello to French"]);
  });

  it("sends a whole conversation and the options over gRPC (createNodeIrisClient)", async () => {
    const client = createNodeIrisClient({ baseUrl: coordinator.url });
    const conversation = [
      { role: "system" as const, content: "Answer briefly." },
      { role: "user" as const, content: "Say hi" },
      { role: "assistant" as const, content: "Hi!" },
      { role: "user" as const, content: "Again, in French" },
    ];
    const events = await collect(client.chat(conversation, { maxTokens: 12, temperature: 0.5 }));
    expect(events.at(-1)?.type).toBe("done");
    const payload = node.payloads.at(-1)!;
    expect(payload.messages.map((m) => m.content)).toEqual(conversation.map((m) => m.content));
    expect(payload.temperature).toBe(0.5);
    expect(node.assigns.at(-1)!.maxTokens).toBe(12);
  });

  it("aborts a streaming answer with an AbortSignal, and the node is told to cancel", async () => {
    const client = createNodeIrisClient({ baseUrl: coordinator.url });
    const controller = new AbortController();
    const cancelsBefore = node.cancels.length;
    let tokens = 0;
    const failure = await (async () => {
      try {
        for await (const event of client.chat("hi", { maxTokens: LONG_ANSWER, signal: controller.signal })) {
          if (event.type === "token" && ++tokens === 2) controller.abort();
        }
      } catch (err) {
        return ConnectError.from(err);
      }
      throw new Error("the aborted chat ended normally");
    })();
    expect(failure.code).toBe(Code.Canceled);
    expect(tokens).toBeLessThan(10);
    await expect.poll(() => node.cancels.length, { timeout: 5000 }).toBe(cancelsBefore + 1);
  });

  it("reports refusals as ConnectErrors with the right code", async () => {
    const client = createNodeIrisClient({ baseUrl: coordinator.url });
    const unknownModel = await collect(client.chat("hi", { model: "no-such-model-70b" })).catch((err: unknown) =>
      ConnectError.from(err),
    );
    expect(unknownModel).toBeInstanceOf(ConnectError);
    expect((unknownModel as ConnectError).code).toBe(Code.NotFound);
    const stranger = createNodeIrisClient({ baseUrl: coordinator.url, accountKey: "0000 0000 0000 0009" });
    await expect(stranger.stats()).rejects.toMatchObject({ code: Code.Unauthenticated });
  });

  it("wraps accounts: keys generate and verify; register and login sign the client in", async () => {
    const client = createNodeIrisClient({ baseUrl: coordinator.url });
    const key = await client.generateKey();
    expect(key).toMatch(/^\d{4} \d{4} \d{4} \d{4}$/);
    expect(await client.verifyKey(key)).toBe(true);
    expect(await client.verifyKey("0000 0000 0000 0001")).toBe(false);

    // RefreshToken needs a user's token: it works only once register() has signed the client in
    await expect(client.accounts.refreshToken({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    const registered = await client.register("sdk@example.com", "correct horse battery");
    expect(registered.role).toBe("user");
    expect((await client.accounts.refreshToken({})).token?.userId).toBe(registered.userId);

    const other = createNodeIrisClient({ baseUrl: coordinator.url });
    expect((await other.login("sdk@example.com", "correct horse battery")).userId).toBe(registered.userId);
    other.setToken(undefined);
    await expect(other.accounts.refreshToken({})).rejects.toMatchObject({ code: Code.Unauthenticated });
    await expect(other.login("sdk@example.com", "wrong password")).rejects.toMatchObject({
      code: Code.Unauthenticated,
    });
  });

  it("wraps the network's read side: stats, nodes, tasks, leaderboard, reputation, models", async () => {
    const client = createNodeIrisClient({ baseUrl: coordinator.url, accountKey });
    await coordinator.journal.flush();
    await coordinator.reputation.settled();
    const stats = await client.stats();
    expect(stats.nodesOnline).toBe(1);
    expect(stats.tasksCompleted).toBeGreaterThanOrEqual(2n);

    const nodes = await client.nodes({ onlineOnly: true });
    expect(nodes.map((n) => [n.nodeId, n.tier, n.online])).toEqual([[NODE_ID, Tier.MID, true]]);
    const tasks = await client.tasks({ nodeId: NODE_ID, limit: 2 });
    expect(tasks).toHaveLength(2);
    expect(tasks.every((t) => t.nodeId === NODE_ID)).toBe(true);
    expect((await client.leaderboard(5))[0]).toMatchObject({ rank: 1, nodeId: NODE_ID });
    const events = await client.reputation(NODE_ID);
    expect(events.some((e) => e.rule === "task_completed" && e.delta === 10)).toBe(true);
    await expect(client.reputation("no-such-node")).rejects.toMatchObject({ code: Code.NotFound });
    expect((await client.models()).map((m) => m.name)).toEqual(["scripted-8B-Q4_K_M"]);
  });
});
