// A coordinator that crashes and comes back under its name long before its peers would count it dead (a WORKERS
// worker restarts after 1 s): its new incarnation is greeted as a newcomer at once. Peers drop what the crashed run
// left (its nodes, whose tasks fail over; the tasks it assigned to their nodes) and send it their whole views; it
// routes to their nodes and they to its new ones within a second or two, though views come only every minute.
// Real processes, NATS and PostgreSQL.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { RemoteNode } from "../coordinator/cluster/remote-node.ts";
import type { ChatResponse } from "../gen/iris/v1/inference_pb.ts";
import { newAccountKey, type TestCoordinator } from "./support/coordinator.ts";
import { startCoordinatorProcess, type CoordinatorProcess } from "./support/coordinator-process.ts";
import { clusterSkipReason, startTestCluster, type TestCluster, chatting as chatWith } from "./support/cluster.ts";
import { natsAnswers, natsSkipReason } from "./support/nats.ts";
import { ScriptedNodes } from "./support/scripted-node.ts";

const nats = await natsAnswers();
const simplePrompt = "Translate 'good morning' to French.";
// views every minute, a silent peer dead after two: within the test only the new incarnation explains speed
const slow = { CLUSTER_VIEW_MS: "60000", CLUSTER_DEAD_AFTER_MS: "120000", HEARTBEAT_INTERVAL_MS: "200" };
/**
 * Half the view interval: what a peer would have waited for without the new incarnation. Typically a second or two
 * (printed below); the bound is only this loose liveness check, so a loaded machine cannot fail it.
 */
const prompt = { timeout: 30_000, interval: 20 };
const patient = { timeout: 10_000 };

const skip = clusterSkipReason() || natsSkipReason(nats);
describe.skipIf(skip !== "")(`a coordinator that crashes and restarts under its name${skip}`, () => {
  let cluster: TestCluster;
  let a: TestCoordinator, c: TestCoordinator;
  let b: CoordinatorProcess, restarted: CoordinatorProcess | undefined;
  let accountKey: string;
  const onB = new ScriptedNodes(() => ({ baseUrl: b.url, accountKey }));
  const onC = new ScriptedNodes(() => ({ baseUrl: c.url, accountKey }));
  const onRestarted = new ScriptedNodes(() => ({ baseUrl: restarted!.url, accountKey }));
  const startB = () =>
    startCoordinatorProcess({ ...cluster.env, DATABASE_URL: cluster.database.url, COORDINATOR_INSTANCE: "b" });

  beforeAll(async () => {
    cluster = await startTestCluster(["a", "c"], { bus: "nats", env: slow });
    [a, c] = cluster.coordinators as [TestCoordinator, TestCoordinator];
    b = await startB();
    accountKey = await newAccountKey(a.url);
    await vi.waitFor(() => expect(a.cluster.peers.sort()).toEqual(["b", "c"]), patient);
    await vi.waitFor(() => expect(c.cluster.peers.sort()).toEqual(["a", "b"]), patient);
  }, 60_000);
  afterAll(async () => {
    onB.killAll();
    onC.killAll();
    onRestarted.killAll();
    await b?.kill();
    await restarted?.kill();
    await cluster?.close();
  });

  const chatting = (baseUrl: string) => chatWith(baseUrl, simplePrompt);
  const doneOf = (events: ChatResponse["event"][]) => events.find((e) => e.case === "done")?.value;

  it("is greeted as new at once: the crashed run's nodes and tasks are dropped, and views flow both ways", async () => {
    await onB.start({
      nodeId: "behind-b",
      script: () => ({ tokens: Array.from({ length: 300 }, (_, i) => `${i} `), delayMs: 50 }),
    });
    await expect.poll(() => (a.registry.get("behind-b") as RemoteNode | undefined)?.home, patient).toBe("b");
    // a request A owns, streaming on the node behind B
    const ownedByA = chatting(a.url);
    await expect.poll(() => ownedByA.events.filter((e) => e.case === "token").length, patient).toBeGreaterThan(2);
    expect(ownedByA.events.find((e) => e.case === "accepted")?.value).toMatchObject({ nodeId: "behind-b" });
    // a request B owns, streaming on a node behind C: it would run for nobody once B is gone
    let slowRuns = 0;
    const slowC = await onC.start({
      nodeId: "slow-c",
      script: () =>
        slowRuns++ === 0 ? { tokens: Array.from({ length: 300 }, () => "z"), delayMs: 50 } : { tokens: ["fast"] },
    });
    await expect.poll(() => (a.registry.get("slow-c") as RemoteNode | undefined)?.home, patient).toBe("c");
    const ownedByB = chatting(b.url);
    await expect.poll(() => slowC.assigns.length, patient).toBe(1);
    await onC.start({ nodeId: "on-c", script: () => ({ tokens: ["rest", "."] }) });
    await expect.poll(() => a.registry.get("on-c"), patient).toBeDefined();

    await b.kill();
    expect(await ownedByB.done).toBeInstanceOf(Error);
    // nobody knows yet: B is silent, and a minute of silence is far off
    expect((a.registry.get("behind-b") as RemoteNode | undefined)?.home).toBe("b");
    expect(a.cluster.peers.sort()).toEqual(["b", "c"]);

    const restartedAt = Date.now();
    restarted = await startB();
    const listeningAt = Date.now();
    // the peers heard a new incarnation: the crashed run's node is gone everywhere, A's request finished on C...
    expect(await ownedByA.done).toBeUndefined();
    const failedOverMs = Date.now() - restartedAt;
    const done = doneOf(ownedByA.events);
    expect(["on-c", "slow-c"]).toContain(done?.nodeId);
    expect(done?.nodeIds).toEqual(["behind-b", done?.nodeId]);
    for (const peer of [a, c]) expect(peer.registry.get("behind-b")).toBeUndefined();
    // ...and C stopped the task the crashed run had assigned to its node
    await expect
      .poll(() => slowC.cancels.map((cancel) => cancel.reason), prompt)
      .toEqual(["the coordinator b that assigned the task is gone"]);

    // the restarted coordinator got the peers' whole views: it routes to C's nodes
    for (const peer of [a, c]) expect(peer.cluster.peers).toContain("b");
    const ownedByRestarted = chatting(restarted.url);
    expect(await ownedByRestarted.done).toBeUndefined();
    expect(["on-c", "slow-c"]).toContain(doneOf(ownedByRestarted.events)?.nodeId);
    // and its peers hear its own nodes at once
    await onRestarted.start({ nodeId: "behind-new-b", script: () => ({ tokens: ["new", " b"] }) });
    await expect.poll(() => (a.registry.get("behind-new-b") as RemoteNode | undefined)?.home, prompt).toBe("b");
    const seenAfterMs = Date.now() - listeningAt;
    expect(restarted.logs.some((line) => line.msg === "cluster: a coordinator joined" && line.home === "a")).toBe(true);
    expect(
      a.logs.some((line) => line.msg === "cluster: a coordinator restarted; its previous run's nodes are dropped"),
    ).toBe(true);
    console.log(
      `coordinator restart: A's request failed over ${failedOverMs} ms after B's process was started again ` +
        `(it listened after ${listeningAt - restartedAt} ms); a node of the restarted B was routable from A ` +
        `${seenAfterMs} ms after it listened (CLUSTER_VIEW_MS 60000)`,
    );
  }, 60_000);
});
