// Many coordinators share every node (issue #12): a request sent to one is served by a node connected to another,
// a queue on one is drained by a node freeing on another, suspensions travel at once, and a node that moves is
// routable from everywhere. Over the real NATS and over the in-process bus: one code path, two buses.
import { generateKeyPairSync } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { InferenceService, type ChatResponse } from "../gen/iris/v1/inference_pb.ts";
import { NodeService } from "../gen/iris/v1/node_pb.ts";
import { publicKeyBytes } from "../common/crypto/envelope.ts";
import { RemoteNode } from "../coordinator/cluster/remote-node.ts";
import { newAccountKey, type TestCoordinator } from "./support/coordinator.ts";
import { clusterSkipReason, startTestCluster, type TestCluster } from "./support/cluster.ts";
import { natsAnswers, natsSkipReason } from "./support/nats.ts";
import { ScriptedNodes } from "./support/scripted-node.ts";

const nats = await natsAnswers();
const simplePrompt = "Translate 'good morning' to French.";

type Events = ChatResponse["event"][];
const accepted = (events: Events) => events.flatMap((e) => (e.case === "accepted" ? [e.value] : []))[0];
const done = (events: Events) => events.flatMap((e) => (e.case === "done" ? [e.value] : []))[0];
const text = (events: Events) => events.flatMap((e) => (e.case === "token" ? [e.value.text] : [])).join("");
const queued = (events: Events) => events.filter((e) => e.case === "queued");

for (const bus of ["nats", "local"] as const) {
  const skip = clusterSkipReason() || (bus === "nats" ? natsSkipReason(nats) : "");
  describe.skipIf(skip !== "")(`a cluster of three coordinators over ${bus === "nats" ? "NATS" : "the in-process bus"}${skip}`, () => {
    let cluster: TestCluster;
    let a: TestCoordinator, b: TestCoordinator, c: TestCoordinator;
    let accountKey: string;
    const nodesOn = (coordinator: () => TestCoordinator) => new ScriptedNodes(() => ({ baseUrl: coordinator().url, accountKey }));
    const onB = nodesOn(() => b);
    const onC = nodesOn(() => c);

    beforeAll(async () => {
      cluster = await startTestCluster(["a", "b", "c"], { bus, env: { HEARTBEAT_INTERVAL_MS: "200", QUEUE_UPDATE_MS: "100" } });
      [a, b, c] = cluster.coordinators as [TestCoordinator, TestCoordinator, TestCoordinator];
      accountKey = await newAccountKey(a.url);
      await vi.waitFor(() => expect(a.cluster.peers.sort()).toEqual(["b", "c"]));
    });
    afterEach(async () => {
      onB.killAll();
      onC.killAll();
      for (const coordinator of [a, b, c]) await expect.poll(() => coordinator.registry.size).toBe(0);
    });
    afterAll(async () => {
      await cluster?.close();
    });

    async function chat(coordinator: TestCoordinator, content = simplePrompt): Promise<Events> {
      const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
      const events: Events = [];
      for await (const response of inference.chat({ params: { messages: [{ role: 2, content }] } })) events.push(response.event);
      return events;
    }

    it("serves a request sent to A with a node connected to B; the payload stays sealed end to end", async () => {
      const node = await onB.start({ nodeId: "on-b", script: () => ({ tokens: ["Bon", "jour", "!"] }) });
      await expect.poll(() => a.registry.get("on-b")).toBeInstanceOf(RemoteNode);
      const events = await chat(a);
      expect(accepted(events)).toMatchObject({ nodeId: "on-b" });
      expect(done(events)).toMatchObject({ nodeId: "on-b", usage: { completionTokens: 3 } });
      expect(text(events)).toBe("Bonjour!");
      // the node opened the assign with its own session keys: A sealed it with the cluster's shared key
      expect(node.payloads.at(-1)?.messages.at(-1)?.content).toBe(simplePrompt);
      // the task row was written by A, the coordinator that owned the request
      const row = () => cluster.database.db.selectFrom("tasks").select(["node_id", "status", "coordinator_instance"]).where("id", "=", accepted(events)!.taskId).executeTakeFirst();
      await expect.poll(row).toEqual({ node_id: "on-b", status: "completed", coordinator_instance: "a" });
      // the slot is free again everywhere
      for (const coordinator of [a, b, c]) await expect.poll(() => coordinator.registry.get("on-b")?.freeSlots).toBe(1);
    });

    it("shows every coordinator the node's tier, model, context, slots and reputation as its home sees them", async () => {
      await onC.start({ nodeId: "on-c", modelName: "Qwen2.5-32B-Instruct-Q4_K_M", parameterCount: 32e9, quantization: "Q4_K_M", contextLength: 8192, tokensPerSecond: 40, maxConcurrentTasks: 3 });
      await expect.poll(() => a.registry.get("on-c")).toBeInstanceOf(RemoteNode);
      const home = c.registry.get("on-c")!;
      for (const coordinator of [a, b]) {
        const seen = coordinator.registry.get("on-c")!;
        expect({ tier: seen.tier, model: seen.capabilities.modelName, q: seen.capabilities.quantization, ctx: seen.contextLength, free: seen.freeSlots, rep: seen.reputation, suspended: seen.suspended })
          .toEqual({ tier: home.tier, model: home.capabilities.modelName, q: home.capabilities.quantization, ctx: home.contextLength, free: 3, rep: home.reputation, suspended: false });
        expect((seen as RemoteNode).home).toBe("c");
      }
    });

    it("drains a queue on A with a node freeing on C; the waiting request hears its position", async () => {
      await onC.start({ nodeId: "busy-c", script: () => ({ tokens: ["a", "b", "c", "d"], delayMs: 150 }) });
      await expect.poll(() => a.registry.get("busy-c")).toBeInstanceOf(RemoteNode);
      const first = chat(c);
      await expect.poll(() => a.registry.get("busy-c")?.freeSlots).toBe(0);
      const second = await chat(a);
      const firstEvents = await first;
      expect(accepted(firstEvents)?.nodeId).toBe("busy-c");
      expect(queued(second).length).toBeGreaterThan(0);
      expect(queued(second)[0]).toMatchObject({ case: "queued", value: { position: 1 } });
      expect(done(second)).toMatchObject({ nodeId: "busy-c" });
      expect(text(second)).toBe("abcd");
    });

    it("keeps one queue across coordinators: positions count every request ahead, and the earliest is served first", async () => {
      await onC.start({ nodeId: "single-slot", script: () => ({ tokens: ["x", "y", "z"], delayMs: 100 }) });
      await expect.poll(() => b.registry.get("single-slot")).toBeInstanceOf(RemoteNode);
      await expect.poll(() => a.registry.get("single-slot")).toBeInstanceOf(RemoteNode);
      const running = chat(c);
      await expect.poll(() => a.registry.get("single-slot")?.freeSlots).toBe(0);
      await expect.poll(() => b.registry.get("single-slot")?.freeSlots).toBe(0);
      const served: string[] = [];
      const first = chat(a).then((events) => (served.push("a"), events));
      await expect.poll(() => b.cluster.queue.countBefore(Date.now())).toBe(1); // B hears A's waiter
      const second = chat(b).then((events) => (served.push("b"), events));
      const [firstEvents, secondEvents] = await Promise.all([first, second]);
      await running;
      expect(queued(firstEvents)[0]).toMatchObject({ value: { position: 1 } });
      // B's request arrived second: one ahead of it, on A
      expect(queued(secondEvents)[0]).toMatchObject({ value: { position: 2 } });
      expect(served).toEqual(["a", "b"]);
      expect(done(secondEvents)).toMatchObject({ nodeId: "single-slot" });
    });

    it("suspends and lifts at once everywhere, whichever coordinator decides", async () => {
      await onB.start({ nodeId: "suspect" });
      await expect.poll(() => c.registry.get("suspect")).toBeInstanceOf(RemoteNode);
      const started = Date.now();
      a.registry.get("suspect")!.suspended = true; // as a mismatch counted on A would
      for (const coordinator of [a, b, c]) await expect.poll(() => coordinator.registry.get("suspect")?.suspended, { interval: 5 }).toBe(true);
      const suspendedIn = Date.now() - started;
      c.registry.get("suspect")!.suspended = false; // as ClearNode on C would
      for (const coordinator of [a, b, c]) await expect.poll(() => coordinator.registry.get("suspect")?.suspended, { interval: 5 }).toBe(false);
      // well within one view period (100 ms here, 1 s by default): it travelled as a change, not with the next view
      expect(suspendedIn).toBeLessThan(100);
    });

    it("ends a node's connection at its home when MoveNode on another coordinator binds it to a new key", async () => {
      const node = await onB.start({ nodeId: "moved" });
      await expect.poll(() => a.registry.get("moved")).toBeInstanceOf(RemoteNode);
      const moved = await createClient(NodeService, createGrpcTransport({ baseUrl: a.url })).moveNode({ nodeId: "moved", accountKey, publicKey: publicKeyBytes(generateKeyPairSync("x25519").privateKey) });
      expect(moved.disconnected).toBe(true);
      const ended = await node.ended;
      expect(ended).toBeInstanceOf(ConnectError);
      expect(ended).toMatchObject({ code: Code.PermissionDenied, rawMessage: 'node "moved" was moved to another key by its owner' });
      await expect.poll(() => b.registry.get("moved")).toBeUndefined();
    });

    it("routes to a node that left its home and registered with another coordinator", async () => {
      const first = await onB.start({ nodeId: "mover" });
      await expect.poll(() => (a.registry.get("mover") as RemoteNode | undefined)?.home).toBe("b");
      first.kill();
      await expect.poll(() => a.registry.get("mover")).toBeUndefined();
      await onC.start({ nodeId: "mover" });
      await expect.poll(() => (a.registry.get("mover") as RemoteNode | undefined)?.home).toBe("c");
      expect(done(await chat(a))).toMatchObject({ nodeId: "mover" });
    });
  });
}
