// Many coordinators share every node (issue #12): a request sent to one is served by a node connected to another,
// a queue on one is drained by a node freeing on another, suspensions travel at once, and a node that moves is
// routable from everywhere. Over the real NATS and over the in-process bus: one code path, two buses.
import { generateKeyPairSync } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Backend } from "../agent/backends/backend.ts";
import { CoordinatorLink } from "../agent/connection.ts";
import { Difficulty, DivisionMode } from "../gen/iris/v1/common_pb.ts";
import { InferenceService, type ChatParams, type ChatResponse } from "../gen/iris/v1/inference_pb.ts";
import { NodeService } from "../gen/iris/v1/node_pb.ts";
import { publicKeyBytes } from "../common/crypto/envelope.ts";
import { RemoteNode } from "../coordinator/cluster/remote-node.ts";
import { newAccountKey, type TestCoordinator } from "./support/coordinator.ts";
import { clusterSkipReason, startConnectionCutter, startTestCluster, type TestCluster } from "./support/cluster.ts";
import { natsAnswers, natsSkipReason } from "./support/nats.ts";
import { ScriptedNodes } from "./support/scripted-node.ts";

const nats = await natsAnswers();
const simplePrompt = "Translate 'good morning' to French.";

type Events = ChatResponse["event"][];
const accepted = (events: Events) => events.flatMap((e) => (e.case === "accepted" ? [e.value] : []))[0];
const done = (events: Events) => events.flatMap((e) => (e.case === "done" ? [e.value] : []))[0];
const text = (events: Events) => events.flatMap((e) => (e.case === "token" ? [e.value.text] : [])).join("");
const queued = (events: Events) => events.filter((e) => e.case === "queued");

async function chat(
  coordinator: TestCoordinator,
  content = simplePrompt,
  params: Partial<Pick<ChatParams, "divisionMode" | "consensusNodes">> = {},
): Promise<Events> {
  const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: coordinator.url }));
  const events: Events = [];
  for await (const response of inference.chat({ params: { messages: [{ role: 2, content }], ...params } }))
    events.push(response.event);
  return events;
}

/** An agent backend that answers every prompt with `pieces`. */
const answering = (pieces: string[]): Backend => ({
  kind: "test",
  describe: async () => ({
    name: "scripted-8B-Q4_K_M",
    parameterCount: 8e9,
    quantization: "Q4_K_M",
    contextLength: 4096,
  }),
  async *generate() {
    for (const text of pieces) yield { text, tokens: 1 };
    return { promptTokens: 7, completionTokens: pieces.length, finishReason: "stop" };
  },
  close: async () => {},
});

for (const bus of ["nats", "local"] as const) {
  const skip = clusterSkipReason() || (bus === "nats" ? natsSkipReason(nats) : "");
  describe.skipIf(skip !== "")(
    `a cluster of three coordinators over ${bus === "nats" ? "NATS" : "the in-process bus"}${skip}`,
    () => {
      let cluster: TestCluster;
      let a: TestCoordinator, b: TestCoordinator, c: TestCoordinator;
      let accountKey: string;
      const nodesOn = (coordinator: () => TestCoordinator) =>
        new ScriptedNodes(() => ({ baseUrl: coordinator().url, accountKey }));
      const onA = nodesOn(() => a);
      const onB = nodesOn(() => b);
      const onC = nodesOn(() => c);

      beforeAll(async () => {
        cluster = await startTestCluster(["a", "b", "c"], {
          bus,
          env: { HEARTBEAT_INTERVAL_MS: "200", QUEUE_UPDATE_MS: "100" },
        });
        [a, b, c] = cluster.coordinators as [TestCoordinator, TestCoordinator, TestCoordinator];
        accountKey = await newAccountKey(a.url);
        await vi.waitFor(() => expect(a.cluster.peers.sort()).toEqual(["b", "c"]));
      });
      afterEach(async () => {
        onA.killAll();
        onB.killAll();
        onC.killAll();
        for (const coordinator of [a, b, c]) await expect.poll(() => coordinator.registry.size).toBe(0);
      });
      afterAll(async () => {
        await cluster?.close();
      });

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
        const row = () =>
          cluster.database.db
            .selectFrom("tasks")
            .select(["node_id", "status", "coordinator_instance"])
            .where("id", "=", accepted(events)!.taskId)
            .executeTakeFirst();
        await expect.poll(row).toEqual({ node_id: "on-b", status: "completed", coordinator_instance: "a" });
        // the slot is free again everywhere
        for (const coordinator of [a, b, c])
          await expect.poll(() => coordinator.registry.get("on-b")?.freeSlots).toBe(1);
      });

      it(
        "shows every coordinator the node's tier, model, context, slots and reputation as its home sees " + "them",
        async () => {
          await onC.start({
            nodeId: "on-c",
            modelName: "Qwen2.5-32B-Instruct-Q4_K_M",
            parameterCount: 32e9,
            quantization: "Q4_K_M",
            contextLength: 8192,
            tokensPerSecond: 40,
            maxConcurrentTasks: 3,
          });
          await expect.poll(() => a.registry.get("on-c")).toBeInstanceOf(RemoteNode);
          const home = c.registry.get("on-c")!;
          for (const coordinator of [a, b]) {
            const seen = coordinator.registry.get("on-c")!;
            expect({
              tier: seen.tier,
              model: seen.capabilities.modelName,
              q: seen.capabilities.quantization,
              ctx: seen.contextLength,
              free: seen.freeSlots,
              rep: seen.reputation,
              suspended: seen.suspended,
            }).toEqual({
              tier: home.tier,
              model: home.capabilities.modelName,
              q: home.capabilities.quantization,
              ctx: home.contextLength,
              free: 3,
              rep: home.reputation,
              suspended: false,
            });
            expect((seen as RemoteNode).home).toBe("c");
          }
        },
      );

      it(
        "runs a consensus request sent to A on three nodes behind A, B and C; done names the nodes of all " + "three",
        async () => {
          // the same answer from every node, unless the prompt asks them to disagree
          const answer = (nodeId: string) => (_: unknown, payload: { messages: { content: string }[] }) => ({
            tokens: [payload.messages.at(-1)?.content.includes("disagree") ? nodeId : "Paris"],
          });
          const nodes = [
            await onA.start({ nodeId: "on-a", script: answer("on-a") }),
            await onB.start({ nodeId: "on-b", script: answer("on-b") }),
            await onC.start({ nodeId: "on-c", script: answer("on-c") }),
          ];
          await expect.poll(() => a.registry.get("on-b")).toBeInstanceOf(RemoteNode);
          await expect.poll(() => a.registry.get("on-c")).toBeInstanceOf(RemoteNode);
          const consensus = { divisionMode: DivisionMode.CONSENSUS, consensusNodes: 3 };
          const everyNode = ["on-a", "on-b", "on-c"];

          // no majority: the answer waits for every copy, and done names every node that answered
          const split = await chat(a, "Which city? Please disagree.", consensus);
          expect(accepted(split)).toMatchObject({ divisionMode: DivisionMode.CONSENSUS });
          expect(done(split)?.verified).toBe(false);
          expect([...done(split)!.nodeIds].sort()).toEqual(everyNode);
          expect(everyNode).toContain(text(split));
          expect(nodes.map((node) => node.assigns.length)).toEqual([1, 1, 1]);

          // agreement: verified as soon as two agree; the third copy is judged when it ends, on its own coordinator's
          // node
          const agreed = await chat(a, "Which city?", consensus);
          expect(done(agreed)).toMatchObject({ verified: true });
          expect(text(agreed)).toBe("Paris");
          expect(done(agreed)!.nodeIds.length).toBeGreaterThanOrEqual(2);
          for (const id of done(agreed)!.nodeIds) expect(everyNode).toContain(id);
          expect(nodes.map((node) => node.assigns.length)).toEqual([2, 2, 2]);
          // A owns the parent and its three parts: one row per node, every one completed
          await a.journal.flush();
          const parts = () =>
            cluster.database.db
              .selectFrom("tasks")
              .select(["node_id", "status", "coordinator_instance"])
              .where("parent_id", "=", accepted(agreed)!.taskId)
              .orderBy("node_id")
              .execute();
          await expect
            .poll(parts)
            .toEqual(everyNode.map((node_id) => ({ node_id, status: "completed", coordinator_instance: "a" })));
          for (const coordinator of [a, b, c])
            for (const id of everyNode) await expect.poll(() => coordinator.registry.get(id)?.freeSlots).toBe(1);
        },
      );

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

      it(
        "keeps one queue across coordinators: positions count every request ahead, and the earliest is served " +
          "first",
        async () => {
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
        },
      );

      it("drains twelve requests waiting on all three coordinators in the order they began to wait", async () => {
        let tasks = 0;
        let release = () => {};
        const held = new Promise<void>((resolve) => (release = resolve));
        // the first task holds the slot until the twelve have lined up
        const script = () => ({ tokens: ["q", "r"], delayMs: 10, ...(tasks++ === 0 ? { holdUntil: held } : {}) });
        const node = await onC.start({ nodeId: "one-slot", script });
        for (const coordinator of [a, b])
          await expect.poll(() => coordinator.registry.get("one-slot")).toBeInstanceOf(RemoteNode);
        const running = chat(c);
        for (const coordinator of [a, b, c])
          await expect.poll(() => coordinator.registry.get("one-slot")?.freeSlots).toBe(0);
        const served: number[] = [];
        const waiting: Promise<Events>[] = [];
        const coordinators = [a, b, c];
        // every peer has heard each request's wait before the next one begins (one order for the whole cluster)
        const heard = () => coordinators.reduce((sum, x) => sum + x.cluster.queue.countBefore(Date.now() + 1), 0);
        for (let i = 0; i < 12; i++) {
          waiting.push(chat(coordinators[i % 3]!, `request ${i}`).then((events) => (served.push(i), events)));
          await expect.poll(heard).toBe(2 * (i + 1));
        }
        release();
        const answers = await Promise.all(waiting);
        await running;
        // the node was given them in that order (over NATS, a home used to answer a peer's assign after applying the
        // queue change right behind it, and gave the slot to a later waiter of its own)
        const given = node.payloads.slice(1).map((payload) => payload.messages.at(-1)?.content);
        expect(given).toEqual([...Array(12).keys()].map((i) => `request ${i}`));
        expect(served).toEqual([...Array(12).keys()]);
        // each heard at first how many waited ahead of it, wherever they waited
        const firstPlace = (events: Events) => (queued(events)[0]?.value as { position: number } | undefined)?.position;
        expect(answers.map(firstPlace)).toEqual([...Array(12).keys()].map((i) => i + 1));
        for (const events of answers) expect(done(events)).toMatchObject({ nodeId: "one-slot" });
        for (const x of coordinators) expect(x.cluster.queue.countBefore(Date.now() + 1)).toBe(0);
      });

      // only NATS limits a message's size (max_payload); the in-process bus takes any
      it.skipIf(bus !== "nats")(
        "a request too large for one NATS message is served by a node of its own coordinator, or refused at once",
        async () => {
          // two messages of ~700 KB: more than NATS's max_payload (1 MB) once sealed in one assign
          const big = "word ".repeat(140_000);
          const messages = [
            { role: 2, content: big },
            { role: 3, content: big },
            { role: 2, content: "Sum it up." },
          ];
          const ask = async () => {
            const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: a.url }));
            const events: Events = [];
            for await (const response of inference.chat({ params: { messages, maxTokens: 8 } }))
              events.push(response.event);
            return events;
          };
          const window = { contextLength: 1_000_000 };
          const far = await onB.start({ nodeId: "far-but-fast", tokensPerSecond: 200, ...window });
          await expect.poll(() => a.registry.get("far-but-fast")).toBeInstanceOf(RemoteNode);
          const refused = await ask().then(
            () => undefined,
            (err: unknown) => ConnectError.from(err),
          );
          expect(refused?.code).toBe(Code.ResourceExhausted);
          expect(refused?.rawMessage).toContain("too large to pass to a node on another coordinator");
          expect(far.assigns).toHaveLength(0);
          // the node stays routable for what fits
          expect(done(await chat(a))).toMatchObject({ nodeId: "far-but-fast" });
          await onA.start({
            nodeId: "near-but-slow",
            tokensPerSecond: 20,
            script: () => ({ tokens: ["ok"] }),
            ...window,
          });
          const served = await ask();
          expect(done(served)).toMatchObject({ nodeId: "near-but-slow" });
        },
      );

      it("suspends and lifts at once everywhere, whichever coordinator decides", async () => {
        await onB.start({ nodeId: "suspect" });
        await expect.poll(() => c.registry.get("suspect")).toBeInstanceOf(RemoteNode);
        const started = Date.now();
        a.registry.get("suspect")!.suspended = true; // as a mismatch counted on A would
        for (const coordinator of [a, b, c])
          await expect.poll(() => coordinator.registry.get("suspect")?.suspended, { interval: 5 }).toBe(true);
        const suspendedIn = Date.now() - started;
        c.registry.get("suspect")!.suspended = false; // as ClearNode on C would
        for (const coordinator of [a, b, c])
          await expect.poll(() => coordinator.registry.get("suspect")?.suspended, { interval: 5 }).toBe(false);
        // well within one view period (100 ms here, 1 s by default): it travelled as a change, not with the next view
        expect(suspendedIn).toBeLessThan(100);
      });

      it(
        "ends a node's connection at its home when MoveNode on another coordinator binds it to a new " + "key",
        async () => {
          const node = await onB.start({ nodeId: "moved" });
          await expect.poll(() => a.registry.get("moved")).toBeInstanceOf(RemoteNode);
          const moved = await createClient(NodeService, createGrpcTransport({ baseUrl: a.url })).moveNode({
            nodeId: "moved",
            accountKey,
            publicKey: publicKeyBytes(generateKeyPairSync("x25519").privateKey),
          });
          expect(moved.disconnected).toBe(true);
          const ended = await node.ended;
          expect(ended).toBeInstanceOf(ConnectError);
          expect(ended).toMatchObject({
            code: Code.PermissionDenied,
            rawMessage: 'node "moved" was moved to another key by its owner',
          });
          await expect.poll(() => b.registry.get("moved")).toBeUndefined();
        },
      );

      it("routes to a node that left its home and registered with another coordinator", async () => {
        const first = await onB.start({ nodeId: "mover" });
        await expect.poll(() => (a.registry.get("mover") as RemoteNode | undefined)?.home).toBe("b");
        first.kill();
        await expect.poll(() => a.registry.get("mover")).toBeUndefined();
        await onC.start({ nodeId: "mover" });
        await expect.poll(() => (a.registry.get("mover") as RemoteNode | undefined)?.home).toBe("c");
        expect(done(await chat(a))).toMatchObject({ nodeId: "mover" });
      });

      it(
        "routes to a node whose stream broke on its home: it registers with another coordinator and serves a " +
          "request sent to a third",
        async () => {
          // a real agent link with COORDINATOR_URL=B,C; its connection to B runs through a relay the test can break
          const relay = await startConnectionCutter(b.url);
          const stop = new AbortController();
          const privateKey = generateKeyPairSync("x25519").privateKey;
          const link = new CoordinatorLink({
            coordinatorUrl: `${relay.url},${c.url}`,
            identity: {
              nodeId: "broken-stream",
              accountKey: accountKey.replaceAll(" ", ""),
              modelName: "scripted-8B-Q4_K_M",
              parameterCount: 8e9,
              quantization: "Q4_K_M",
              contextLength: 4096,
              tokensPerSecond: 20,
              maxConcurrentTasks: 1,
              gpus: [],
              backend: "test",
              agentVersion: "test",
              promisedHoursUtc: [],
              key: { privateKey, publicKey: publicKeyBytes(privateKey) },
            },
            backend: answering(["still", " here"]),
            logger: pino({ level: "silent" }),
            signal: stop.signal,
            backoff: { initialMs: 50, maxMs: 200 },
          });
          const running = link.run().catch((err: unknown) => err);
          try {
            await expect
              .poll(() => (a.registry.get("broken-stream") as RemoteNode | undefined)?.home, { timeout: 10_000 })
              .toBe("b");
            expect(b.registry.get("broken-stream")?.remote).toBe(false);
            relay.cut(); // the node's TCP connection to B breaks; B itself runs on
            // the agent moves on to C: every coordinator, B included, routes to it there
            await expect.poll(() => c.registry.get("broken-stream")?.remote, { timeout: 10_000 }).toBe(false);
            for (const coordinator of [a, b])
              await expect
                .poll(() => (coordinator.registry.get("broken-stream") as RemoteNode | undefined)?.home, {
                  timeout: 10_000,
                })
                .toBe("c");
            const events = await chat(a);
            expect(done(events)).toMatchObject({ nodeId: "broken-stream" });
            expect(text(events)).toBe("still here");
          } finally {
            stop.abort();
            await running;
            await relay.close();
          }
        },
      );
    },
  );

  describe.skipIf(skip !== "")(
    `a coordinator that stops gracefully over ${bus === "nats" ? "NATS" : "the in-process bus"}${skip}`,
    () => {
      // peers would take a minute to think it dead, and views come every half minute: only its leaving explains speed
      const slow = { CLUSTER_VIEW_MS: "30000", CLUSTER_DEAD_AFTER_MS: "60000", HEARTBEAT_INTERVAL_MS: "200" };
      let cluster: TestCluster;
      let a: TestCoordinator, b: TestCoordinator, c: TestCoordinator;
      let accountKey: string;
      const onB = new ScriptedNodes(() => ({ baseUrl: b.url, accountKey }));
      const onC = new ScriptedNodes(() => ({ baseUrl: c.url, accountKey }));

      beforeAll(async () => {
        cluster = await startTestCluster(["a", "b", "c"], { bus, env: slow });
        [a, b, c] = cluster.coordinators as [TestCoordinator, TestCoordinator, TestCoordinator];
        accountKey = await newAccountKey(a.url);
        await vi.waitFor(() => expect(a.cluster.peers.sort()).toEqual(["b", "c"]));
      });
      afterAll(async () => {
        onB.killAll();
        onC.killAll();
        await cluster?.close();
      });

      it("says it is leaving: peers fail its nodes' tasks over and forget it at once, and hear it anew when it " +
        "returns", async () => {
        await onB.start({
          nodeId: "behind-b",
          script: () => ({ tokens: Array.from({ length: 40 }, (_, i) => `${i} `), delayMs: 50 }),
        });
        await expect.poll(() => (a.registry.get("behind-b") as RemoteNode | undefined)?.home).toBe("b");
        const inference = createClient(InferenceService, createGrpcTransport({ baseUrl: a.url }));
        const events: Events = [];
        const finished = (async () => {
          for await (const response of inference.chat({ params: { messages: [{ role: 2, content: simplePrompt }] } }))
            events.push(response.event);
        })();
        await expect.poll(() => events.filter((e) => e.case === "token").length).toBeGreaterThan(2);
        await onC.start({ nodeId: "on-c", script: () => ({ tokens: ["rest"] }) });
        await expect.poll(() => a.registry.get("on-c")).toBeInstanceOf(RemoteNode);

        await b.close();
        // long before CLUSTER_DEAD_AFTER_MS: B is no peer, its node is gone, and A's request finished on C's node
        for (const peer of [a, c])
          await expect.poll(() => peer.cluster.peers, { timeout: 20_000 }).toEqual([peer === a ? "c" : "a"]);
        expect(a.registry.get("behind-b")).toBeUndefined();
        await finished;
        expect(done(events)).toMatchObject({ nodeId: "on-c", nodeIds: ["behind-b", "on-c"] });

        // B again, under its name: A and C greet it as a newcomer with their whole views, long before the next
        // periodic one (30 s)
        const returned = await cluster.add("b");
        await expect
          .poll(() => (returned.registry.get("on-c") as RemoteNode | undefined)?.home, { timeout: 15_000 })
          .toBe("c");
        await expect.poll(() => returned.cluster.peers.sort(), { timeout: 15_000 }).toEqual(["a", "c"]);
      }, 60_000);
    },
  );

  describe.skipIf(skip !== "")(
    `classification with another coordinator's node over ${bus === "nats" ? "NATS" : "the in-process bus"}${skip}`,
    () => {
      let cluster: TestCluster;
      let a: TestCoordinator, b: TestCoordinator;
      let accountKey: string;
      const onB = new ScriptedNodes(() => ({ baseUrl: b.url, accountKey }));

      beforeAll(async () => {
        // B asks no node itself; A, with no node of its own, asks B's
        cluster = await startTestCluster(["b"], { bus, env: { HEARTBEAT_INTERVAL_MS: "200" } });
        b = cluster.coordinators[0]!;
        a = await cluster.add("a", { CLASSIFIER_NODE_BUDGET_MS: "3000" });
        accountKey = await newAccountKey(a.url);
        await vi.waitFor(() => expect(a.cluster.peers).toEqual(["b"]));
      });
      afterAll(async () => {
        onB.killAll();
        await cluster?.close();
      });

      it("A, with no node of its own, probes B's node through B, learns its record, then waits on it", async () => {
        const prompts: string[] = [];
        const judge = await onB.start({
          nodeId: "judge-on-b",
          script: () => ({ tokens: ["ok"] }),
          classify: (prompt) => {
            prompts.push(prompt);
            // a difficulty its own tier serves (MID): the request then runs on it
            return { difficulty: Difficulty.COMPLEX, delayMs: 20 };
          },
        });
        await expect.poll(() => a.registry.get("judge-on-b")).toBeInstanceOf(RemoteNode);
        // no record yet: the local model decides at once, and the node gets the prompt as a probe, through B
        const first = await chat(a, "Compare PostgreSQL and MySQL for a small shop.");
        expect(accepted(first)).toMatchObject({ classifier: "local", nodeId: "judge-on-b" });
        await expect.poll(() => judge.classifyAssigns.length).toBe(1);
        // sealed by A for the node's session: the node opened it
        expect(prompts[0]).toContain("Compare PostgreSQL and MySQL");
        // once its answer is back at A, a request waits on it and takes its difficulty (a new prompt each try:
        // answers are cached by conversation)
        let tries = 0;
        await vi.waitFor(
          async () => {
            const events = await chat(a, `What is the capital of Peru? (${tries++})`);
            expect(accepted(events)).toMatchObject({ classifier: "node", difficulty: Difficulty.COMPLEX });
          },
          { timeout: 10_000, interval: 50 },
        );
        expect(a.classifier.stats().links.node).toMatchObject({ answered: 1, failed: 0, timedOut: 0 });
        // B passed the answers on: none reached its own node link as an answer nobody waited for
        expect(b.logs.filter((line) => line.msg === "classify result nobody is waiting for; ignored")).toEqual([]);
        expect(b.classifier.stats().links.node).toBeUndefined();
      });

      it("a node that left its home starts afresh: its record here is forgotten and it is probed again", async () => {
        onB.killAll();
        await expect.poll(() => a.registry.get("judge-on-b")).toBeUndefined();
        const judging = { script: () => ({ tokens: ["ok"] }), classify: () => ({ difficulty: Difficulty.COMPLEX }) };
        const judge = await onB.start({ nodeId: "leaving-judge", ...judging });
        await expect.poll(() => a.registry.get("leaving-judge")).toBeInstanceOf(RemoteNode);
        let tries = 0;
        await vi.waitFor(
          async () => {
            const events = await chat(a, `Tell me about the history of Rome in three lines. (${tries++})`);
            expect(accepted(events)).toMatchObject({ classifier: "node" });
          },
          { timeout: 10_000, interval: 50 },
        );
        judge.kill();
        await expect.poll(() => a.registry.get("leaving-judge")).toBeUndefined();
        const back = await onB.start({ nodeId: "leaving-judge", ...judging });
        await expect.poll(() => a.registry.get("leaving-judge")?.sessionId).toBe((await back.registered).sessionId);
        // the new connection has no record here: the next request is decided locally while it is probed
        const events = await chat(a, "Summarise the plot of Hamlet.");
        expect(accepted(events)).toMatchObject({ classifier: "local", nodeId: "leaving-judge" });
        await expect.poll(() => back.classifyAssigns.length).toBe(1);
      });
    },
  );
}
