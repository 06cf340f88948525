import { describe, expect, it } from "vitest";
import { seededRandom } from "../../common/seeded-random.ts";
import { NodeRegistry, type LiveNode, type NodeCapabilities } from "../nodes/registry.ts";
import type { TaskSink } from "../nodes/task-sink.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import { NODE_TIERS, type Difficulty } from "../../common/vocabulary.ts";
import { create } from "@bufbuild/protobuf";
import { ClusterAssignReplySchema } from "../../gen/iris/v1/cluster_pb.ts";
import { clusterNodeOf } from "../cluster/codec.ts";
import { RemoteNode, type HomeLink } from "../cluster/remote-node.ts";
import { pickNode, routeNow, type RouteRequest } from "./router.ts";

const sink: TaskSink = { chunk() {}, result() {}, error() {}, lost() {} };
const anyTask: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set() };

/** A home that never answers: these tests only choose among nodes. */
const noHome: HomeLink = {
  send() {},
  assign: async () => create(ClusterAssignReplySchema, { accepted: false, reason: "not in this test" }),
};

/**
 * A node with `running` of its `slots` taken; `remote`: connected to another coordinator of the cluster (a RemoteNode
 * made from its home's view, its running tasks those of other coordinators).
 */
function node(id: string, options: { slots: number; running: number; remote?: boolean; reputation?: number }) {
  const capabilities: Partial<NodeCapabilities> = { maxConcurrentTasks: options.slots };
  const made = testNode(id, "MID", capabilities);
  if (options.reputation !== undefined) made.reputation = options.reputation;
  for (let i = 0; i < options.running; i++) made.tasks.set(`${id}-${i}`, sink);
  return options.remote ? new RemoteNode("home", clusterNodeOf(made), made.keys, noHome, Date.now()) : made;
}

describe("pickNode", () => {
  it("takes an idle node before a busy one, wherever it is connected", () => {
    const busyHere = node("busy-here", { slots: 8, running: 1 });
    const idleThere = node("idle-there", { slots: 1, running: 0, remote: true });
    expect(pickNode([busyHere, idleThere], anyTask)?.id).toBe("idle-there");
  });

  it("among idle nodes, the more reputable wins even behind another coordinator (SPEC)", () => {
    const here = node("here", { slots: 2, running: 0, reputation: 100 });
    const there = node("there", { slots: 2, running: 0, reputation: 120, remote: true });
    expect(pickNode([here, there], anyTask)?.id).toBe("there");
    expect(pickNode([there, here], anyTask)?.id).toBe("there");
  });

  it("breaks a tie between idle nodes in favour of this coordinator's own (no hop)", () => {
    const here = node("here", { slots: 2, running: 0 });
    const there = node("there", { slots: 2, running: 0, remote: true });
    expect(pickNode([there, here], anyTask)?.id).toBe("here");
    expect(pickNode([here, there], anyTask)?.id).toBe("here");
  });

  it("among busy nodes with a free slot, takes this coordinator's own before one with more room elsewhere", () => {
    const here = node("here", { slots: 4, running: 3 });
    const there = node("there", { slots: 4, running: 1, remote: true });
    expect(pickNode([there, here], anyTask)?.id).toBe("here");
  });

  it("among busy nodes of one coordinator, the one with more free slots", () => {
    const fuller = node("fuller", { slots: 4, running: 3 });
    const roomier = node("roomier", { slots: 4, running: 1 });
    expect(pickNode([fuller, roomier], anyTask)?.id).toBe("roomier");
    const fullerThere = node("fuller-there", { slots: 4, running: 3, remote: true });
    const roomierThere = node("roomier-there", { slots: 4, running: 1, remote: true });
    expect(pickNode([fullerThere, roomierThere], anyTask)?.id).toBe("roomier-there");
  });

  it("goes to another coordinator's node when this one's are full", () => {
    const full = node("full-here", { slots: 2, running: 2 });
    const there = node("there", { slots: 4, running: 3, remote: true });
    expect(pickNode([full, there], anyTask)?.id).toBe("there");
  });
});

/** What pickNode orders by: idle first, then (busy) this coordinator's own, free slots, speed, reputation, its own. */
const rank = (node: LiveNode) => [
  node.tasks.size === 0,
  node.tasks.size === 0 || !node.remote, // among busy nodes this coordinator's own first
  node.freeSlots,
  node.capabilities.tokensPerSecond,
  node.reputation,
  !node.remote,
];

describe("routeNow (the registry's indexes)", () => {
  it("chooses what pickNode chooses reading every node, through a long run of random changes and requests", () => {
    const registry = new NodeRegistry();
    const next = seededRandom(11);
    const random = (n: number) => Math.floor(next() * n);
    const nodes: LiveNode[] = [];
    const difficulties: Difficulty[] = ["SIMPLE", "COMPLEX", "ADVANCED"];
    let task = 0;
    let checked = 0;
    let idleChosen = 0;
    let busyChosen = 0;
    for (let step = 0; step < 6_000; step++) {
      // a registered node mostly; at times one replaced or removed (its changes must not reach the indexes)
      const live = [...registry.nodes()];
      const node = random(10) === 0 && nodes.length > 0 ? nodes[random(nodes.length)] : live[random(live.length)];
      // in turns of 400 changes the network fills up (tasks start more than they end), then drains
      const filling = Math.floor(step / 400) % 2 === 0;
      const op = !node || registry.size < 15 ? 0 : random(40);
      if (op === 0 || !node) {
        // few speeds and reputations: reputation often decides, and equals tie (either is right)
        const made = testNode(`n${random(60)}`, NODE_TIERS[random(3)]!, {
          maxConcurrentTasks: 1 + random(2),
          tokensPerSecond: 10 * (1 + random(2)),
          modelName: random(4) === 0 ? "qwen-7B-Q4" : "llama-8B-Q4",
        });
        // a quarter of them connected to another coordinator: this one's own come first among equals
        const added =
          random(4) === 0 ? new RemoteNode("home", clusterNodeOf(made), made.keys, noHome, Date.now()) : made;
        registry.add(added); // an id already registered replaces its node
        nodes.push(added);
      } else if (op === 1) registry.remove(node, "gone");
      else if (op <= 29 && op <= 25 === filling) node.tasks.set(`t${task++}`, sink);
      else if (op <= 29) {
        // a task ends: all of them, at times (the node idle again)
        for (const taskId of random(3) === 0 ? [...node.tasks.keys()] : [...node.tasks.keys()].slice(0, 1))
          node.tasks.delete(taskId);
      } else if (op <= 32) node.paused = !node.paused;
      else if (op <= 35) node.suspended = random(4) === 0;
      else if (op <= 37) node.reputation = 50 + 10 * random(5);
      else node.tier = NODE_TIERS[random(3)]!;

      const request: RouteRequest = {
        difficulty: difficulties[random(3)]!,
        model: random(5) === 0 ? "qwen" : undefined,
        exclude: new Set(random(3) === 0 && node ? [node.id] : []),
      };
      const open = random(4) === 0 ? (n: LiveNode) => n.id.length % 2 === 0 : undefined;
      const expected = pickNode(open ? [...registry.nodes()].filter(open) : registry.nodes(), request);
      const chosen = routeNow(registry, request, open);
      // the same node, or one exactly as good by every rule of pickNode's order
      expect(chosen && rank(chosen)).toEqual(expected && rank(expected));
      if (chosen)
        expect(pickNode([chosen, ...(open ? [...registry.nodes()].filter(open) : registry.nodes())], request)).toBe(
          chosen,
        );
      checked++;
      if (expected && expected.tasks.size === 0) idleChosen++;
      else if (expected) busyChosen++;
    }
    // the run went through both ways of choosing: idle nodes from their lists, busy ones with room
    expect(checked).toBe(6_000);
    expect(idleChosen).toBeGreaterThan(1_000);
    expect(busyChosen).toBeGreaterThan(100);
  });
});

describe("routeNow with a model named", () => {
  /** A registry whose idle lists and nodes with room fail the test when read: only the model's nodes may be. */
  const modelOnly = (registry: NodeRegistry) => ({
    get: () => expect.unreachable("looked a node up") as never,
    idleNodes: () => expect.unreachable("read the idle lists") as never,
    nodesWithRoom: () => expect.unreachable("read the nodes with room") as never,
    modelNodeCount: (model: string) => registry.modelNodeCount(model),
    nodesOfModel: (model: string) => registry.nodesOfModel(model),
  });

  it("reads only the nodes of a model few serve, and takes their best, busy or idle", () => {
    const registry = new NodeRegistry();
    for (let i = 0; i < 500; i++) registry.add(testNode(`llama-${i}`, "MID", { modelName: "llama-8B" }));
    const slow = testNode("qwen-slow", "MID", { modelName: "Qwen2-7B", tokensPerSecond: 10 });
    const fast = testNode("qwen-fast", "MID", { modelName: "qwen2-7b", tokensPerSecond: 40, maxConcurrentTasks: 2 });
    registry.add(slow);
    registry.add(fast);
    const qwen: RouteRequest = { difficulty: "SIMPLE", model: "qwen2", exclude: new Set() };
    expect(routeNow(modelOnly(registry), qwen)).toBe(fast);
    fast.tasks.set("t1", sink); // busy, a slot left: the idle one goes first
    expect(routeNow(modelOnly(registry), qwen)).toBe(slow);
    slow.tasks.set("t2", sink);
    expect(routeNow(modelOnly(registry), qwen)).toBe(fast);
    fast.tasks.set("t3", sink);
    expect(routeNow(modelOnly(registry), qwen)).toBeUndefined();
    expect(routeNow(modelOnly(registry), { ...qwen, model: "mistral" })).toBeUndefined();
  });

  it("chooses what pickNode chooses for a model many nodes serve (read from the idle lists)", () => {
    const registry = new NodeRegistry();
    const next = seededRandom(5);
    const random = (n: number) => Math.floor(next() * n);
    for (let i = 0; i < 600; i++) {
      const made = testNode(`n${i}`, NODE_TIERS[random(3)]!, {
        modelName: random(2) === 0 ? "llama-8B" : "qwen-7B",
        tokensPerSecond: 10 + random(20),
        maxConcurrentTasks: 1 + random(2),
      });
      for (let t = random(3); t > 0 && made.freeSlots > 0; t--) made.tasks.set(`${made.id}-${t}`, sink);
      registry.add(made);
    }
    expect(registry.modelNodeCount("llama")).toBeGreaterThan(256); // past the few: the idle lists are read
    for (const difficulty of ["SIMPLE", "COMPLEX", "ADVANCED"] as const) {
      const request: RouteRequest = { difficulty, model: "llama", exclude: new Set() };
      const chosen = routeNow(registry, request);
      expect(chosen?.capabilities.modelName).toBe("llama-8B");
      expect(pickNode([chosen!, ...registry.nodes()], request)).toBe(chosen);
    }
  });
});

describe("routeNow for one node (only)", () => {
  it("looks the node up, reading no list, and takes it only while it is free and eligible", () => {
    const registry = new NodeRegistry();
    for (let i = 0; i < 50; i++) registry.add(testNode(`n${i}`, "MID"));
    const checker = registry.get("n7")!;
    const lookupOnly = {
      get: (id: string) => registry.get(id),
      idleNodes: () => expect.unreachable("read the idle lists") as never,
      nodesWithRoom: () => expect.unreachable("read the nodes with room") as never,
      modelNodeCount: () => expect.unreachable("counted a model's nodes") as never,
      nodesOfModel: () => expect.unreachable("read a model's nodes") as never,
    };
    const only: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set(), only: "n7" };
    expect(routeNow(lookupOnly, only)).toBe(checker);
    expect(routeNow(lookupOnly, { ...only, model: "n7-8b" })).toBe(checker); // the model's name, lower case
    expect(routeNow(lookupOnly, { ...only, exclude: new Set(["n7"]) })).toBeUndefined(); // it failed this part
    expect(routeNow(lookupOnly, { ...only, difficulty: "ADVANCED" })).toBeUndefined(); // a MID node
    expect(
      routeNow(lookupOnly, { ...only, sameModel: { modelName: "other", quantization: "Q4_K_M" } }),
    ).toBeUndefined();
    expect(routeNow(lookupOnly, { ...only, only: "gone" })).toBeUndefined();
    expect(routeNow(lookupOnly, only, (node) => node.id !== "n7")).toBeUndefined(); // its slot is owed elsewhere
    checker.tasks.set("t1", sink);
    expect(routeNow(lookupOnly, only)).toBeUndefined(); // busy: a check does not wait for it
    // and no other node is eligible for it, wherever it is read from
    expect(pickNode(registry.nodes(), only)).toBeUndefined();
    checker.tasks.delete("t1");
    expect(pickNode(registry.nodes(), only)).toBe(checker);
  });
});
