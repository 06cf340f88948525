// The registry's indexes: the nodes with a free slot (nodesWithRoom), what routing (past the idle nodes) and the
// queue's drain read instead of every node, always the registered nodes whose freeSlots > 0 (by tier too); the nodes
// by tier (nodesServing), what the check for a capable node reads, always the registered nodes whose tier serves; and
// the nodes by model (nodesOfModel, nodesServing with a model), always the registered nodes whose model is named so.
import { describe, expect, it } from "vitest";
import { seededRandom } from "../../common/seeded-random.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import { NodeRegistry, type LiveNode } from "./registry.ts";
import { servesDifficulty } from "./tier.ts";
import type { TaskSink } from "./task-sink.ts";

const sink: TaskSink = { chunk() {}, result() {}, error() {}, lost() {} };
const ids = (nodes: Iterable<LiveNode>) => [...nodes].map((node) => node.id).sort();
const withRoomByReading = (registry: NodeRegistry) => [...registry.nodes()].filter((node) => node.freeSlots > 0);

describe("NodeRegistry.nodesWithRoom", () => {
  it("lists a node while it has a free slot: taken, freed, paused, resumed", () => {
    const registry = new NodeRegistry();
    const a = testNode("a", "MID", { maxConcurrentTasks: 2 });
    const b = testNode("b", "MID");
    registry.add(a);
    registry.add(b);
    expect(ids(registry.nodesWithRoom())).toEqual(["a", "b"]);
    a.tasks.set("t1", sink);
    expect(ids(registry.nodesWithRoom())).toEqual(["a", "b"]); // one slot of two left
    a.tasks.set("t2", sink);
    b.tasks.set("t3", sink);
    expect(ids(registry.nodesWithRoom())).toEqual([]);
    a.tasks.delete("t1");
    expect(ids(registry.nodesWithRoom())).toEqual(["a"]);
    a.paused = true;
    expect(ids(registry.nodesWithRoom())).toEqual([]);
    b.tasks.delete("t3");
    a.paused = false;
    expect(ids(registry.nodesWithRoom())).toEqual(["a", "b"]);
  });

  it("forgets a node removed or replaced by a newer connection, and its tasks' ends do not bring it back", () => {
    const registry = new NodeRegistry();
    const old = testNode("a", "MID");
    registry.add(old);
    old.tasks.set("t1", sink);
    const newer = testNode("a", "MID", { maxConcurrentTasks: 3 });
    registry.add(newer); // the old connection's tasks are lost: its slot frees as it goes
    expect([...registry.nodesWithRoom()]).toEqual([newer]);
    old.tasks.set("t2", sink);
    old.tasks.delete("t2");
    expect([...registry.nodesWithRoom()]).toEqual([newer]);
    registry.remove(newer, "gone");
    expect([...registry.nodesWithRoom()]).toEqual([]);
  });

  it("equals the nodes with free slots read one by one (by tier too), through a long run of random changes", () => {
    const tiers = ["BASIC", "MID", "PRO"] as const;
    const registry = new NodeRegistry();
    const next = seededRandom(7);
    const random = (n: number) => Math.floor(next() * n);
    const nodes: LiveNode[] = [];
    let task = 0;
    for (let step = 0; step < 5_000; step++) {
      const node = nodes.length > 0 ? nodes[random(nodes.length)]! : undefined;
      const op = node ? random(8) : 0;
      if (op === 0) {
        const added = testNode(`n${random(40)}`, tiers[random(3)]!, { maxConcurrentTasks: 1 + random(3) });
        registry.add(added); // an id already registered replaces its node
        nodes.push(added);
      } else if (op === 1) registry.remove(node!, "gone");
      else if (op === 2 || op === 3) node!.tasks.set(`t${task++}`, sink);
      else if (op === 4 || op === 5) {
        const running = [...node!.tasks.keys()];
        if (running.length > 0) node!.tasks.delete(running[random(running.length)]!);
      } else if (op === 6) node!.paused = !node!.paused;
      else node!.tier = tiers[random(3)]!; // a node with room moves with its tier
      expect(ids(registry.nodesWithRoom())).toEqual(ids(withRoomByReading(registry)));
      for (const difficulty of ["SIMPLE", "COMPLEX", "ADVANCED"] as const) {
        const serving = withRoomByReading(registry).filter((n) => servesDifficulty(n.tier, difficulty));
        expect(ids(registry.nodesWithRoom(difficulty))).toEqual(ids(serving));
      }
    }
  });
});

describe("NodeRegistry's nodes by tier and by model", () => {
  it("equal the registered nodes whose tier serves and whose model is named like a hint, in random changes", () => {
    const registry = new NodeRegistry();
    const next = seededRandom(13);
    const random = (n: number) => Math.floor(next() * n);
    const tiers = ["BASIC", "MID", "PRO"] as const;
    // names that contain one another ("llama" in both llamas), differ in case, or share a prefix
    const models = ["Llama-3-8B-Q4", "llama-3-70B-Q4", "Qwen2-7B", "qwen2-72b", "Mistral-7B"];
    const hints = ["llama", "70b", "qwen2", "qwen2-7", "mistral", "phi", "7b"];
    const nodes: LiveNode[] = [];
    const named = (hint: string) =>
      [...registry.nodes()].filter((n) => n.capabilities.modelName.toLowerCase().includes(hint));
    let largeAndSmall = 0;
    for (let step = 0; step < 3_000; step++) {
      const node = nodes.length > 0 ? nodes[random(nodes.length)]! : undefined;
      const op = node ? random(4) : 0;
      if (op === 0) {
        // an id registered again serves another model, maybe: the node it replaces leaves its model's nodes
        const added = testNode(`n${random(40)}`, tiers[random(3)]!, { modelName: models[random(models.length)]! });
        registry.add(added);
        nodes.push(added);
      } else if (op === 1) registry.remove(node!, "gone");
      else node!.tier = tiers[random(3)]!;
      const hint = hints[random(hints.length)]!;
      const name = models[random(models.length)]!;
      expect(ids(registry.nodesNamed(name))).toEqual(
        ids([...registry.nodes()].filter((n) => n.capabilities.modelName === name)),
      );
      expect(ids(registry.nodesOfModel(hint))).toEqual(ids(named(hint)));
      expect(registry.modelNodeCount(hint)).toBe(named(hint).length);
      expect(registry.servesModel(hint)).toBe(named(hint).length > 0);
      expect([...registry.modelNames()].sort()).toEqual(
        [...new Set([...registry.nodes()].map((n) => n.capabilities.modelName))].sort(),
      );
      for (const difficulty of ["SIMPLE", "COMPLEX", "ADVANCED"] as const) {
        // a replaced or removed node's tier moves too: it stays out
        const serving = [...registry.nodes()].filter((n) => servesDifficulty(n.tier, difficulty));
        expect(ids(registry.nodesServing(difficulty))).toEqual(ids(serving));
        const byReading = named(hint).filter((n) => servesDifficulty(n.tier, difficulty));
        expect(ids(registry.nodesServing(difficulty, hint))).toEqual(ids(byReading));
        // both ways of reading were taken: the model's nodes fewer than the tiers', and more
        const tiered = serving.length;
        if (named(hint).length > 0 && named(hint).length !== tiered)
          largeAndSmall |= named(hint).length < tiered ? 1 : 2;
      }
    }
    expect(largeAndSmall).toBe(3);
  });
});
