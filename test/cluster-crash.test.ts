// A coordinator of a cluster SIGKILLed mid-stream (issue #12): a request another coordinator owns, whose node was
// behind the dead one, fails over to another node and finishes; the dead one's own requests end for their clients;
// a survivor ends its task rows; its node registers elsewhere and is routable from everywhere; a real agent link
// with a COORDINATOR_URL list moves to the next coordinator within seconds. Real processes, NATS and PostgreSQL.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Backend } from "../agent/backends/backend.ts";
import { CoordinatorLink } from "../agent/connection.ts";
import { loadOrCreateKeyFile } from "../common/crypto/key-file.ts";
import type { RemoteNode } from "../coordinator/cluster/remote-node.ts";
import { newAccountKey, type TestCoordinator } from "./support/coordinator.ts";
import { startCoordinatorProcess, type CoordinatorProcess } from "./support/coordinator-process.ts";
import { clusterSkipReason, startTestCluster, type TestCluster, chatting as chatWith } from "./support/cluster.ts";
import { natsAnswers, natsSkipReason } from "./support/nats.ts";
import { ScriptedNodes } from "./support/scripted-node.ts";

const nats = await natsAnswers();
const simplePrompt = "Translate 'good morning' to French.";
// survivors end a dead peer's task rows quickly (docs/faults.md "Crashed coordinators")
const liveness = { INSTANCE_HEARTBEAT_MS: "200", INSTANCE_DEAD_AFTER_MS: "600" };
// a loaded CI machine may take seconds over a step; no step's bound is what the test measures
const patient = { timeout: 10_000 };

const skip = clusterSkipReason() || natsSkipReason(nats);
describe.skipIf(skip !== "")(`a coordinator SIGKILLed mid-stream${skip}`, () => {
  let cluster: TestCluster;
  let a: TestCoordinator, c: TestCoordinator;
  let b: CoordinatorProcess;
  let accountKey: string;
  const stop = new AbortController();
  const onB = new ScriptedNodes(() => ({ baseUrl: b.url, accountKey }));
  const onC = new ScriptedNodes(() => ({ baseUrl: c.url, accountKey }));

  beforeAll(async () => {
    cluster = await startTestCluster(["a", "c"], { bus: "nats", env: { HEARTBEAT_INTERVAL_MS: "200", ...liveness } });
    [a, c] = cluster.coordinators as [TestCoordinator, TestCoordinator];
    b = await startCoordinatorProcess({
      ...cluster.env,
      ...liveness,
      HEARTBEAT_INTERVAL_MS: "200",
      DATABASE_URL: cluster.database.url,
      COORDINATOR_INSTANCE: "b",
    });
    accountKey = await newAccountKey(a.url);
    await vi.waitFor(() => expect(a.cluster.peers.sort()).toEqual(["b", "c"]), { timeout: 5_000 });
  }, 60_000);
  afterAll(async () => {
    stop.abort();
    onB.killAll();
    onC.killAll();
    await b?.kill();
    await cluster?.close();
  });

  const chatting = (baseUrl: string) => chatWith(baseUrl, simplePrompt);

  it("fails over another coordinator's request, ends its own, and lets its nodes and agents move on", async () => {
    // both requests run on the node behind B; the node on C joins once they stream, and takes over A's
    await onB.start({
      nodeId: "behind-b",
      tokensPerSecond: 29,
      maxConcurrentTasks: 2,
      script: () => ({ tokens: Array.from({ length: 300 }, (_, i) => `${i} `), delayMs: 50 }),
    });
    const key = await loadOrCreateKeyFile(join(mkdtempSync(join(tmpdir(), "iris-failover-key-")), "node.key"));
    const link = new CoordinatorLink({
      coordinatorUrl: `${b.url},${c.url}`,
      identity: {
        nodeId: "agent-link",
        accountKey: accountKey.replaceAll(" ", ""),
        modelName: "Iris Tiny Test Model",
        parameterCount: 113_472,
        quantization: "F32",
        contextLength: 2048,
        tokensPerSecond: 5,
        maxConcurrentTasks: 1,
        gpus: [],
        backend: "embedded",
        agentVersion: "test",
        promisedHoursUtc: [],
        key,
      },
      backend: { kind: "embedded" } as Backend, // an idle agent never calls its backend
      logger: pino({ level: "silent" }),
      signal: stop.signal,
    });
    link.setPaused(true); // its backend is a stand-in: it takes no task
    void link.run();
    await expect.poll(() => (a.registry.get("agent-link") as RemoteNode | undefined)?.paused, patient).toBe(true);
    await expect.poll(() => (a.registry.get("behind-b") as RemoteNode | undefined)?.home, patient).toBe("b");

    const ownedByA = chatting(a.url);
    const ownedByB = chatting(b.url);
    await expect.poll(() => ownedByA.events.filter((e) => e.case === "token").length, patient).toBeGreaterThan(2);
    expect(ownedByA.events.find((e) => e.case === "accepted")?.value).toMatchObject({ nodeId: "behind-b" });
    await expect.poll(() => ownedByB.events.filter((e) => e.case === "token").length, patient).toBeGreaterThan(2);
    // a request B owns, on a node behind C: when B dies, C stops it (it would run for nobody)
    const slow = await onC.start({
      nodeId: "slow-c",
      tokensPerSecond: 11,
      script: () => ({ tokens: Array.from({ length: 100 }, () => "z"), delayMs: 50 }),
    });
    const ownedByBonC = chatting(b.url);
    await expect.poll(() => slow.assigns.length, patient).toBe(1);
    await onC.start({ nodeId: "on-c", tokensPerSecond: 11, script: () => ({ tokens: ["rest", "."] }) });
    await expect.poll(() => a.registry.get("on-c"), patient).toBeDefined();

    const killedAt = Date.now();
    await b.kill();

    // A's request: lost with B, moved to the node on C, finished
    expect(await ownedByA.done).toBeUndefined();
    const finishedAfterMs = Date.now() - killedAt;
    const done = ownedByA.events.find((e) => e.case === "done")?.value;
    // either node on C may take it: slow-c frees up as C cancels B's task on it, on-c is idle
    expect(["on-c", "slow-c"]).toContain(done?.nodeId);
    expect(done?.nodeIds).toEqual(["behind-b", done?.nodeId]);
    // B's own requests ended for their clients (the connection dropped)
    expect(await ownedByB.done).toBeInstanceOf(Error);
    expect(await ownedByBonC.done).toBeInstanceOf(Error);
    await expect
      .poll(() => slow.cancels.map((c) => c.reason), patient)
      .toEqual(["the coordinator b that assigned the task is gone"]);

    // the agent moved to C and is routable from A again
    await expect.poll(() => c.registry.get("agent-link")?.remote, { timeout: 10_000, interval: 10 }).toBe(false);
    const agentMovedAfterMs = Date.now() - killedAt;
    await expect.poll(() => (a.registry.get("agent-link") as RemoteNode | undefined)?.home, patient).toBe("c");

    // a survivor ended B's unfinished task rows
    const open = () =>
      cluster.database.db
        .selectFrom("tasks")
        .select("id")
        .where("coordinator_instance", "=", "b")
        .where("status", "in", ["queued", "assigned", "streaming"])
        .execute();
    await expect.poll(async () => (await open()).length, { timeout: 10_000 }).toBe(0);
    const ended = await cluster.database.db
      .selectFrom("tasks")
      .select(["status", "failure_reason"])
      .where("coordinator_instance", "=", "b")
      .execute();
    expect(ended.length).toBeGreaterThan(0);
    expect(
      ended.every((row) => row.status === "failed" && row.failure_reason?.includes("stopped before the task ended")),
    ).toBe(true);

    // the node behind B registers with C and serves A's next request
    await expect.poll(() => a.registry.get("behind-b"), patient).toBeUndefined();
    await onC.start({ nodeId: "behind-b", tokensPerSecond: 29, script: () => ({ tokens: ["again"] }) });
    const next = chatting(a.url);
    expect(await next.done).toBeUndefined();
    expect(next.events.find((e) => e.case === "done")?.value).toMatchObject({ nodeId: "behind-b" });
    console.log(
      `coordinator SIGKILL: A's request finished on another node ${finishedAfterMs} ms after the kill ` +
        `(CLUSTER_DEAD_AFTER_MS 500); the agent registered with the next coordinator after ${agentMovedAfterMs} ms`,
    );
  }, 60_000);
});
