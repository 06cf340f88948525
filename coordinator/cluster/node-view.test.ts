// The shared node view on one coordinator: what a home's views do to its registry (RemoteNodes created, updated,
// dropped, expired), which registration wins, how slots held elsewhere count, and what a refused assign does.
import { create } from "@bufbuild/protobuf";
import { generateKeyPairSync } from "node:crypto";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { publicKeyBytes } from "../../common/crypto/envelope.ts";
import { ClusterAssignReplySchema, ClusterViewSchema, type ClusterNode } from "../../gen/iris/v1/cluster_pb.ts";
import { ConnectResponseSchema } from "../../gen/iris/v1/node_pb.ts";
import { NodeRegistry, type TaskSink } from "../nodes/registry.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import { clusterSubjects } from "./bus.ts";
import { LocalBus } from "./bus-local.ts";
import { clusterNodeOf } from "./codec.ts";
import { ViewReceiver } from "./view-receiver.ts";
import { ElsewhereTask, RemoteNode, type HomeLink, type ToHome } from "./remote-node.ts";

const key = generateKeyPairSync("x25519").privateKey;
const coordinatorKey = { privateKey: key, publicKey: publicKeyBytes(key) };
const nodeKey = publicKeyBytes(generateKeyPairSync("x25519").privateKey);

/** A node as home "b" would publish it. */
function viewed(
  id: string,
  changes: {
    registeredAt?: number;
    running?: string[];
    sessionId?: string;
    suspended?: boolean;
    maxConcurrentTasks?: number;
  } = {},
): ClusterNode {
  const live = testNode(id, "MID", { maxConcurrentTasks: changes.maxConcurrentTasks ?? 2 });
  live.publicKey = nodeKey;
  live.registeredAt = changes.registeredAt ?? 1_000;
  const node = clusterNodeOf(live);
  node.sessionId = changes.sessionId ?? node.sessionId;
  node.suspended = changes.suspended ?? false;
  node.running = (changes.running ?? []).map((taskId) => ({
    $typeName: "iris.v1.ClusterRunningTask",
    taskId,
    startedAtUnixMs: 5n,
  }));
  return node;
}

function setup(options: { reply?: "accepted" | "busy" | "gone" } = {}) {
  const registry = new NodeRegistry();
  let now = 10_000;
  const sent: ToHome[] = [];
  const link: HomeLink = {
    send: (_node, message) => void sent.push(message),
    assign: async () =>
      create(ClusterAssignReplySchema, {
        accepted: options.reply === "accepted",
        gone: options.reply === "gone",
        reason: options.reply ?? "",
      }),
  };
  const joined: string[] = [];
  const left: string[] = [];
  const receiver = new ViewReceiver(
    {
      bus: new LocalBus(),
      subjects: clusterSubjects("t"),
      instance: "a",
      incarnation: "a-1",
      registry,
      coordinatorKey,
      logger: pino({ level: "silent" }),
      viewMs: 1_000,
      deadAfterMs: 3_000,
      now: () => now,
    },
    link,
    (home) => joined.push(home),
    (home) => left.push(home),
  );
  const message = (
    nodes: ClusterNode[],
    extra: { full?: boolean; gone?: string[]; home?: string; publicKey?: Uint8Array; incarnation?: string } = {},
  ) =>
    create(ClusterViewSchema, {
      home: extra.home ?? "b",
      incarnation: extra.incarnation ?? "",
      coordinatorPublicKey: extra.publicKey ?? coordinatorKey.publicKey,
      full: extra.full ?? false,
      nodes,
      gone: extra.gone ?? [],
    });
  const view = (nodes: ClusterNode[], extra: Parameters<typeof message>[1] = {}) =>
    receiver.receive(message(nodes, extra));
  const leave = (extra: Parameters<typeof message>[1] = {}) => receiver.left(message([], { full: true, ...extra }));
  return { registry, receiver, view, leave, joined, left, sent, advance: (ms: number) => (now += ms) };
}

const lostSink = (reasons: string[]): TaskSink => ({
  chunk() {},
  result() {},
  error() {},
  lost: (reason) => void reasons.push(reason),
});

describe("the node view", () => {
  it("makes a home's nodes routable here, with what routing reads", () => {
    const { registry, view } = setup();
    view([viewed("n1")]);
    const node = registry.get("n1");
    expect(node).toBeInstanceOf(RemoteNode);
    expect({
      home: (node as RemoteNode).home,
      remote: node!.remote,
      tier: node!.tier,
      free: node!.freeSlots,
      model: node!.capabilities.modelName,
    }).toEqual({
      home: "b",
      remote: true,
      tier: "MID",
      free: 2,
      model: "n1-8B-Q4_K_M",
    });
  });

  it("ignores a home with another coordinator key: its nodes' frames could not be sealed from here", () => {
    const { registry, view } = setup();
    view([viewed("n1")], { publicKey: publicKeyBytes(generateKeyPairSync("x25519").privateKey) });
    expect(registry.get("n1")).toBeUndefined();
  });

  it("drops a node the home says is gone, or leaves out of a full view; its running tasks are lost", () => {
    const { registry, view } = setup();
    view([viewed("n1"), viewed("n2")]);
    const reasons: string[] = [];
    registry.get("n1")!.tasks.set("t1", lostSink(reasons));
    view([], { gone: ["n1"] });
    expect(registry.get("n1")).toBeUndefined();
    expect(reasons).toEqual(["the node left coordinator b"]);
    view([], { full: true });
    expect(registry.get("n2")).toBeUndefined();
  });

  it("drops every node of a home that falls silent, so their tasks fail over", () => {
    const { registry, view, receiver, advance } = setup();
    view([viewed("n1")]);
    const reasons: string[] = [];
    registry.get("n1")!.tasks.set("t1", lostSink(reasons));
    advance(2_900);
    receiver.expire();
    expect(registry.get("n1")).toBeDefined();
    advance(200);
    receiver.expire();
    expect(registry.get("n1")).toBeUndefined();
    expect(reasons[0]).toMatch(/^coordinator b fell silent \(no node view for 3100 ms\)$/);
    expect(receiver.peers).toEqual([]);
  });

  it(
    "forgets a home that says it is leaving at once: nodes dropped, tasks lost, no peer; it is new again when it " +
      "returns",
    () => {
      const { registry, view, leave, receiver, joined, left } = setup();
      view([viewed("n1"), viewed("n2")]);
      view([viewed("c1")], { home: "c" });
      const reasons: string[] = [];
      registry.get("n1")!.tasks.set("t1", lostSink(reasons));
      leave({ publicKey: publicKeyBytes(generateKeyPairSync("x25519").privateKey) }); // not one of ours: ignored
      expect(receiver.peers.sort()).toEqual(["b", "c"]);
      leave();
      expect([registry.get("n1"), registry.get("n2")]).toEqual([undefined, undefined]);
      expect(registry.get("c1")).toBeInstanceOf(RemoteNode);
      expect(reasons).toEqual(["coordinator b stopped"]);
      expect({ peers: receiver.peers, left }).toEqual({ peers: ["c"], left: ["b"] });
      // back under the same name: a newcomer, who hears this coordinator's whole view
      view([]);
      expect(joined).toEqual(["b", "c", "b"]);
    },
  );

  it(
    "drops a restarted home's earlier nodes at once (their tasks fail over) and greets it as a newcomer; the " +
      "earlier run's late words are ignored",
    () => {
      const { registry, view, leave, receiver, joined, left } = setup();
      view([viewed("n1"), viewed("n2")], { incarnation: "b-1", full: true });
      view([viewed("c1")], { home: "c", incarnation: "c-1" });
      const reasons: string[] = [];
      registry.get("n1")!.tasks.set("t1", lostSink(reasons));
      // b crashed and came back long before CLUSTER_DEAD_AFTER_MS: its first word is a beat with no nodes
      view([], { incarnation: "b-2" });
      expect([registry.get("n1"), registry.get("n2")]).toEqual([undefined, undefined]);
      expect(reasons).toEqual(["coordinator b restarted"]);
      expect({ joined, left, peers: receiver.peers.sort() }).toEqual({
        joined: ["b", "c", "b"],
        left: ["b"],
        peers: ["b", "c"],
      });
      expect(registry.get("c1")).toBeInstanceOf(RemoteNode);
      // the new run's nodes are routable; the same incarnation again is no restart
      view([viewed("n3", { sessionId: "s3" })], { incarnation: "b-2", full: true });
      view([viewed("n3", { sessionId: "s3" })], { incarnation: "b-2" });
      expect((registry.get("n3") as RemoteNode).home).toBe("b");
      expect(left).toEqual(["b"]);
      // a view or a leaving of the earlier run (a second coordinator under the name) changes nothing
      view([viewed("n1")], { incarnation: "b-1", full: true });
      leave({ incarnation: "b-1" });
      expect({ n1: registry.get("n1"), n3: registry.get("n3")?.connected, left }).toEqual({
        n1: undefined,
        n3: true,
        left: ["b"],
      });
      // its own leaving does; a later run is a newcomer again, and the ended run stays ended
      leave({ incarnation: "b-2" });
      expect(registry.get("n3")).toBeUndefined();
      view([], { incarnation: "b-3" });
      view([viewed("n3")], { incarnation: "b-2", full: true });
      expect({ n3: registry.get("n3"), joined: joined.length, left }).toEqual({
        n3: undefined,
        joined: 4,
        left: ["b", "b"],
      });
    },
  );

  it("a home that fell silent and speaks again under the same incarnation is back, not restarted", () => {
    const { registry, view, receiver, advance, joined, left } = setup();
    view([viewed("n1")], { incarnation: "b-1" });
    advance(3_100);
    receiver.expire();
    expect(registry.get("n1")).toBeUndefined();
    view([viewed("n1")], { incarnation: "b-1" });
    expect({ joined, left, n1: registry.get("n1")?.connected }).toEqual({ joined: ["b", "b"], left: ["b"], n1: true });
  });

  it(
    "keeps the later registration when two homes claim a node, and replaces a connection here by a later one " +
      "elsewhere",
    () => {
      const { registry, view } = setup();
      view([viewed("n1", { registeredAt: 2_000 })], { home: "b" });
      view([viewed("n1", { registeredAt: 1_000, sessionId: "old" })], { home: "c" });
      expect((registry.get("n1") as RemoteNode).home).toBe("b");
      view([viewed("n1", { registeredAt: 3_000, sessionId: "newer" })], { home: "c" });
      expect((registry.get("n1") as RemoteNode).home).toBe("c");

      const local = testNode("mine", "MID");
      local.registeredAt = 5_000;
      registry.add(local);
      view([viewed("mine", { registeredAt: 4_000 })]);
      expect(registry.get("mine")).toBe(local);
      view([viewed("mine", { registeredAt: 6_000 })]);
      expect(registry.get("mine")).toBeInstanceOf(RemoteNode);
      expect(local.connected).toBe(false);
    },
  );

  it("counts tasks running elsewhere against the node's slots, and not a task this coordinator just ended", () => {
    const { registry, view, sent } = setup();
    view([viewed("n1", { running: ["elsewhere"] })]);
    const node = registry.get("n1")!;
    expect(node.freeSlots).toBe(1);
    expect(node.tasks.get("elsewhere")).toBeInstanceOf(ElsewhereTask);
    node.tasks.set("mine", lostSink([]));
    expect(node.freeSlots).toBe(0);
    node.tasks.delete("mine"); // Attempt.end(): the home hears the release
    expect(sent.at(-1)).toMatchObject({ taskId: "mine", message: { case: "release", value: true } });
    // a view sent before the home heard the release still lists it: no slot is held for it here
    view([viewed("n1", { running: ["elsewhere", "mine"] })]);
    expect(node.freeSlots).toBe(1);
    view([viewed("n1", { running: [] })]);
    expect(node.freeSlots).toBe(2);
  });

  it("sends suspensions and reputation set here to the home; the home's own view does not echo back", () => {
    const { registry, view, sent } = setup();
    view([viewed("n1")]);
    const node = registry.get("n1")!;
    node.suspended = true;
    node.reputation = 42;
    expect(sent.map((m) => m.message)).toEqual([
      { case: "update", value: { suspended: true } },
      { case: "update", value: { reputation: 42 } },
    ]);
    view([viewed("n1", { suspended: false })]);
    expect(node.suspended).toBe(false);
    expect(sent).toHaveLength(2);
  });

  const assign = create(ConnectResponseSchema, { message: { case: "taskAssign", value: { taskId: "t1" } } });
  it("a busy refusal leaves the node connected but full until the home's next view", async () => {
    const { registry, view } = setup({ reply: "busy" });
    view([viewed("n1", { maxConcurrentTasks: 1 })]);
    const node = registry.get("n1")!;
    expect(await node.sendAssign(assign)).toBe(false);
    expect({ connected: node.connected, free: node.freeSlots }).toEqual({ connected: true, free: 0 });
    view([viewed("n1", { maxConcurrentTasks: 1 })]);
    expect(node.freeSlots).toBe(1);
  });

  it("a gone refusal disconnects this view of the node", async () => {
    const { registry, view } = setup({ reply: "gone" });
    view([viewed("n1")]);
    const node = registry.get("n1")!;
    expect(await node.sendAssign(assign)).toBe(false);
    expect(node.connected).toBe(false);
  });
});
