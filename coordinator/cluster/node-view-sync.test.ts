// The node view's numbered views between a home and its peers: beats carry no nodes, a peer that missed a view (a
// gap, a first hearing, a count that disagrees, a node lost here) asks the home, and the home's one full view puts
// it back in step. Publisher and receiver talk over the in-process bus (node-view-nats.test.ts: over NATS); a wrapper
// loses the views a test says.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  type ClusterView,
  ClusterViewSchema,
  type ClusterViewWanted,
  ClusterViewWantedSchema,
} from "../../gen/iris/v1/cluster_pb.ts";
import { GpuSchema } from "../../gen/iris/v1/common_pb.ts";
import { ConnectResponseSchema } from "../../gen/iris/v1/node_pb.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import {
  context,
  coordinatorKey,
  link,
  nodeKey,
  settled,
  setup,
  subjects,
} from "../../test/support/node-view-harness.ts";
import { LocalBus, LocalNetwork } from "./bus-local.ts";
import { clusterNodeOf } from "./codec.ts";
import { FULL_VIEW_NODES_PER_TURN, SLOT_VIEW_DELAY_MS, ViewPublisher } from "./node-view.ts";
import { ViewReceiver } from "./view-receiver.ts";

const assign = { message: { case: "taskAssign" as const, value: { taskId: "t1" } } };

describe("the node view's numbered views", () => {
  it("sends a node's new service time at once (its own home's, or one an assigner sent: both served())", async () => {
    const { publisher, heard, connect, join, remote, stop } = setup();
    const node = connect("n1");
    join();
    publisher.beat();
    await settled();
    expect(remote("n1")?.serviceTimes).toEqual([]);
    heard.views.length = 0;
    node.served(1234);
    await settled();
    expect(heard.views.map((view) => view.nodes.map((n) => [...n.serviceTimesMs]))).toEqual([[[1234]]]);
    expect(remote("n1")?.serviceTimes).toEqual([1234]);
    stop();
  });

  it("holds a slot's change SLOT_VIEW_DELAY_MS for others to join it, unless peers have requests waiting", async () => {
    let waiting = false;
    const { publisher, heard, connect, join, remote, stop } = setup({ othersWaiting: () => waiting });
    const node = connect("n1");
    join();
    publisher.beat();
    await settled();
    heard.views.length = 0;
    const sink = { chunk() {}, result() {}, error() {}, lost() {} };
    // a task starts and ends, and another starts: one view, after the delay
    node.tasks.set("t1", sink);
    await settled();
    node.tasks.delete("t1");
    node.served(900);
    node.tasks.set("t2", sink);
    await settled();
    expect(heard.views).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, SLOT_VIEW_DELAY_MS + 20));
    await settled();
    expect(heard.views.map((view) => view.nodes.map((n) => n.running.map((t) => t.taskId)))).toEqual([[["t2"]]]);
    expect(remote("n1")?.freeSlots).toBe(0);
    // the peer was told the node is full: the slot it frees goes out at once
    heard.views.length = 0;
    node.tasks.delete("t2");
    await settled();
    expect(heard.views).toHaveLength(1);
    expect(remote("n1")?.freeSlots).toBe(1);
    // a slot taken waits; a suspension goes out at once and takes it along
    heard.views.length = 0;
    node.tasks.set("t3", sink);
    await settled();
    expect(heard.views).toEqual([]);
    node.suspended = true;
    await settled();
    expect(heard.views).toHaveLength(1);
    expect([remote("n1")?.suspended, remote("n1")?.freeSlots]).toEqual([true, 0]);
    node.suspended = false;
    node.tasks.delete("t3");
    await settled();
    // with requests waiting on a peer, a slot taken goes out at once too
    heard.views.length = 0;
    waiting = true;
    node.tasks.set("t4", sink);
    await settled();
    expect(heard.views).toHaveLength(1);
    stop();
  });

  it("sends changed heartbeat readings with the next beat, once however many came, and none unchanged", async () => {
    const { publisher, heard, connect, join, remote, stop } = setup();
    const node = connect("n1");
    join();
    publisher.beat();
    await settled();
    expect(remote("n1")?.load).toBe(0);
    heard.views.length = 0;
    const card = { name: "RTX 4090", vramTotalMb: 24_576, vramUsedMb: 9_000, utilizationPercent: 87 };
    const reading = () =>
      create(GpuSchema, { ...card, vramTotalMb: BigInt(card.vramTotalMb), vramUsedMb: BigInt(card.vramUsedMb) });
    node.heard(0.5, []);
    node.heard(0.75, [reading()]);
    await settled();
    expect(heard.views).toEqual([]); // not at once: readings wait for the beat
    publisher.beat();
    await settled();
    expect(heard.views.map((view) => view.nodes.map((n) => n.load))).toEqual([[0.75], []]);
    expect(remote("n1")?.load).toBe(0.75);
    expect(remote("n1")?.capabilities.gpus).toEqual([card]);
    heard.views.length = 0;
    node.heard(0.75, [reading()]); // the same readings again
    publisher.beat();
    await settled();
    expect(heard.views.map((view) => view.nodes.length)).toEqual([0]);
    stop();
  });

  it("numbers every view; a beat carries the count of nodes and no nodes", async () => {
    const { publisher, heard, connect, stop } = setup();
    connect("n1");
    connect("n2");
    await settled();
    publisher.beat();
    await settled();
    expect(
      heard.views.map((v) => ({ sequence: v.sequence, full: v.full, nodes: v.nodes.length, count: v.nodeCount })),
    ).toEqual([
      { sequence: 1n, full: false, nodes: 2, count: 2 },
      { sequence: 2n, full: false, nodes: 0, count: 2 },
    ]);
    expect(heard.views[1]!.gone).toEqual([]);
    stop();
  });

  it("a peer that missed a delta asks at the next view; the full view adds and drops what it missed", async () => {
    const { home, publisher, join, heard, connect, remote, stop } = setup();
    join();
    connect("n1");
    connect("n2");
    await settled();
    expect([remote("n1")?.connected, remote("n2")?.connected]).toEqual([true, true]);
    // n1 leaves and n3 comes, and both views are lost
    home.state.lose = 2;
    home.registry.remove(home.registry.get("n1")!, "gone");
    await settled();
    connect("n3");
    await settled();
    expect([remote("n1")?.connected, remote("n3")]).toEqual([true, undefined]);
    publisher.beat();
    await settled();
    expect(heard.wants).toMatchObject([{ origin: "p", incarnation: "h-1", sequence: 4n, reason: "gap" }]);
    expect(heard.views.at(-1)).toMatchObject({ full: true, sequence: 5n, nodeCount: 2 });
    expect({ n1: remote("n1"), n2: remote("n2")?.connected, n3: remote("n3")?.connected }).toEqual({
      n1: undefined,
      n2: true,
      n3: true,
    });
    publisher.beat();
    await settled();
    expect(heard.wants).toHaveLength(1); // in step again
    stop();
  });

  it("splits a large full view by an estimate of its size: every part within the limit, every node once", async () => {
    const { publisher, join, heard, connectMany, home, remote, stop } = setup({ partBytes: 8_000 });
    join();
    const ids = connectMany(300);
    // uneven nodes: a tenth carry GPUs and service times (the estimate samples 32 of them)
    for (const id of ids.filter((_, i) => i % 10 === 0)) {
      const node = home.registry.get(id)!;
      node.heard(0.5, [create(GpuSchema, { name: "RTX 4090", vramTotalMb: 24_564n, vramUsedMb: 100n })]);
      for (let i = 0; i < 20; i++) node.served(1_000 + i);
    }
    await settled();
    const from = heard.views.length;
    publisher.publishFull();
    await settled(60);
    const parts = heard.views.slice(from);
    const bytes = heard.bytes.slice(from);
    const whole = toBinary(
      ClusterViewSchema,
      create(ClusterViewSchema, { nodes: ids.map((id) => clusterNodeOf(home.registry.get(id)!)) }),
    ).length;
    expect(bytes.every((size) => size <= 8_000)).toBe(true);
    // no more parts than twice the fewest that could hold it
    expect(parts.length).toBeLessThanOrEqual(2 * Math.ceil(whole / 8_000));
    expect(parts.every((view) => view.parts === parts.length)).toBe(true);
    expect(parts.flatMap((view) => view.nodes.map((node) => node.nodeId)).sort()).toEqual([...ids].sort());
    expect(ids.every((id) => remote(id)?.connected)).toBe(true);
    stop();
  });

  it("encodes a large full view a slice a turn; the changes made meanwhile go out after its parts", async () => {
    const { home, publisher, join, heard, connectMany, remote, stop } = setup({ partBytes: 20_000 });
    join();
    const count = 3 * FULL_VIEW_NODES_PER_TURN + 10;
    const ids = connectMany(count);
    await settled();
    expect(ids.every((id) => remote(id)?.connected)).toBe(true);
    const from = heard.views.length;
    publisher.publishFull();
    // while its slices are encoded: a node leaves, one is paused, one comes, and a beat is due
    home.registry.remove(home.registry.get("n0")!, "gone");
    home.registry.get("n1")!.paused = true;
    const late = testNode("late", "MID");
    late.publicKey = nodeKey;
    home.registry.add(late);
    publisher.beat();
    await settled(1);
    expect(heard.views.length).toBe(from); // nothing yet: the view is not all encoded, and nothing goes before it
    await settled(12);
    const sent = heard.views.slice(from);
    const parts = sent.filter((view) => view.parts > 0);
    const after = sent.slice(parts.length);
    expect(parts.length).toBeGreaterThan(2);
    expect(sent.slice(0, parts.length)).toEqual(parts); // the parts first, in a row
    expect(parts.map((view) => [view.part, view.parts, view.nodeCount])).toEqual(
      parts.map((_, i) => [i + 1, parts.length, count]),
    );
    expect(Math.max(...heard.bytes.slice(from, from + parts.length))).toBeLessThanOrEqual(20_000);
    expect(parts.flatMap((view) => view.nodes.map((node) => node.nodeId)).sort()).toEqual([...ids].sort());
    // then the changes, numbered after the last part
    expect(after.length).toBeGreaterThan(0);
    expect(after[0]!.sequence).toBe(parts.at(-1)!.sequence + 1n);
    expect(after.flatMap((view) => view.gone)).toContain("n0");
    expect(after.flatMap((view) => view.nodes.map((node) => node.nodeId)).sort()).toEqual(["late", "n1"]);
    await settled(20); // the peer applies a part a turn
    expect([remote("n0"), remote("n1")?.paused, remote("late")?.connected]).toEqual([undefined, true, true]);
    publisher.beat();
    await settled();
    expect(heard.wants).toEqual([]); // in step
    stop();
  });

  it("a full view its estimate took for too large, that fits one message after all, goes whole", async () => {
    // 64 nodes, the even ones (those the estimate samples) with many GPUs: the estimate is about twice the size
    const gpus = Array.from({ length: 12 }, () => create(GpuSchema, { name: "RTX 4090", vramTotalMb: 24_564n }));
    const count = 64;
    const made = (registry: NodeRegistry) =>
      Array.from({ length: count }, (_, i) => {
        const node = testNode(`n${i}`, "MID");
        node.publicKey = nodeKey;
        if (i % 2 === 0) node.heard(0.5, gpus);
        registry.add(node);
        return node;
      });
    const size = toBinary(
      ClusterViewSchema,
      create(ClusterViewSchema, { full: true, nodes: made(new NodeRegistry()).map((node) => clusterNodeOf(node)) }),
    ).length;
    const { home, publisher, join, heard, remote, stop } = setup({ partBytes: size + 400 });
    join();
    made(home.registry);
    await settled();
    const from = heard.views.length;
    publisher.publishFull();
    await settled(8);
    const sent = heard.views.slice(from);
    expect(sent.map((view) => [view.full, view.parts, view.nodes.length])).toEqual([[true, 0, count]]);
    expect(heard.bytes.at(-1)).toBeLessThanOrEqual(size + 400);
    expect(remote("n63")?.connected).toBe(true);
    publisher.beat();
    await settled();
    expect(heard.wants).toEqual([]);
    stop();
  });

  it("a stop while a full view is encoded sends none of it", async () => {
    const { publisher, join, heard, connectMany, stop } = setup({ partBytes: 20_000 });
    join();
    connectMany(2 * FULL_VIEW_NODES_PER_TURN);
    await settled();
    const from = heard.views.length;
    publisher.publishFull();
    publisher.stop(false);
    await settled(8);
    expect(heard.views.length).toBe(from);
    stop();
  });

  it("sends a full view too big for one message in parts; after the last, a peer drops what none listed", async () => {
    const { home, publisher, join, heard, connect, connectMany, remote, stop } = setup({ partBytes: 2_000 });
    join();
    const ids = connectMany(24);
    connect("old");
    await settled();
    // "old" leaves, and the view saying so is lost
    home.state.lose = 1;
    home.registry.remove(home.registry.get("old")!, "gone");
    await settled();
    expect(remote("old")?.connected).toBe(true);
    const from = heard.views.length;
    publisher.publishFull();
    await settled(40);
    const parts = heard.views.slice(from);
    expect(parts.length).toBeGreaterThan(2);
    expect(parts.map((view) => [view.part, view.parts, view.full, view.nodeCount])).toEqual(
      parts.map((_, i) => [i + 1, parts.length, false, ids.length]),
    );
    expect(parts.map((view) => view.sequence - parts[0]!.sequence)).toEqual(parts.map((_, i) => BigInt(i)));
    expect(Math.max(...heard.bytes.slice(from))).toBeLessThanOrEqual(2_000);
    expect(parts.flatMap((view) => view.nodes.map((node) => node.nodeId)).sort()).toEqual([...ids].sort());
    expect(remote("old")).toBeUndefined();
    expect(ids.every((id) => remote(id)?.connected)).toBe(true);
    publisher.beat();
    await settled();
    expect(heard.wants).toEqual([]); // in step: the counts agree, no number was skipped
    stop();
  });

  it("a part lost on the way: nothing is dropped for it, and the peer asks for the whole view again", async () => {
    const { home, publisher, join, heard, connectMany, remote, stop } = setup({ partBytes: 2_000 });
    join();
    const ids = connectMany(24);
    await settled();
    // the second part is lost
    home.state.after = 1;
    home.state.lose = 1;
    const from = heard.views.length;
    publisher.publishFull();
    await settled(40);
    expect(ids.every((id) => remote(id)?.connected)).toBe(true);
    expect(heard.wants).toMatchObject([{ origin: "p", reason: "gap" }]);
    // the home answered the ask with the whole view again, in parts
    expect(heard.views.slice(from).filter((view) => view.part === 1)).toHaveLength(2);
    publisher.beat();
    await settled();
    expect(heard.wants).toHaveLength(1); // in step again
    expect(ids.every((id) => remote(id)?.connected)).toBe(true);
    stop();
  });

  it("applies a full view's parts one a turn, and what came after them in order", async () => {
    const { peer, publisher, join, connect, connectMany, remote, stop } = setup({ partBytes: 2_000 });
    const ids = connectMany(24);
    await settled();
    join();
    publisher.publishFull();
    connect("late"); // its view goes out after the parts: the last part must not drop it
    await settled(1);
    const held = () => [...peer.registry.nodes()].length;
    expect(held()).toBeGreaterThan(0);
    expect(held()).toBeLessThan(ids.length);
    await settled(40);
    expect(held()).toBe(ids.length + 1);
    expect(remote("late")?.connected).toBe(true);
    stop();
  });

  it("a new peer asks for the full view at the first view it hears, and holds every node after it", async () => {
    const { publisher, join, heard, connect, remote, stop } = setup();
    connect("n1");
    connect("n2");
    await settled();
    join();
    publisher.beat();
    await settled();
    expect(heard.wants).toMatchObject([{ origin: "p", reason: "first", sequence: 2n }]);
    expect([remote("n1")?.connected, remote("n2")?.connected]).toEqual([true, true]);
    stop();
  });

  it("answers every ask of one turn with one full view, and no ask from before its last full view", async () => {
    const { network, publisher, heard, connect, stop } = setup();
    connect("n1");
    await settled();
    const asker = new LocalBus(network);
    const ask = (sequence: bigint, incarnation = "h-1") =>
      asker.publish(
        subjects.want("h"),
        toBinary(ClusterViewWantedSchema, create(ClusterViewWantedSchema, { origin: "x", incarnation, sequence })),
      );
    ask(1n);
    ask(1n);
    ask(1n);
    await settled();
    const fulls = () => heard.views.filter((view) => view.full).map((view) => view.sequence);
    expect(fulls()).toEqual([2n]);
    ask(1n); // heard before that full view, which is on its way to it
    ask(2n, "h-0"); // another run under the name
    await settled();
    expect(fulls()).toEqual([2n]);
    publisher.beat();
    ask(3n);
    await settled();
    expect(fulls()).toEqual([2n, 4n]);
    stop();
  });

  it("alone, sends no changes but numbers them: a peer that still holds the home's nodes sees the gap", async () => {
    const network = new LocalNetwork();
    const registry = new NodeRegistry();
    let peers = false;
    const bus = new LocalBus(network);
    const publisher = new ViewPublisher(context(bus, "h", registry), () => peers);
    const views: ClusterView[] = [];
    new LocalBus(network).subscribe(subjects.view, (data) => views.push(fromBinary(ClusterViewSchema, data)));
    registry.add(testNode("n1", "MID"));
    await settled();
    publisher.beat();
    peers = true;
    registry.add(testNode("n2", "MID"));
    await settled();
    expect(views.map((v) => [v.sequence, v.nodes.map((n) => n.nodeId), v.nodeCount])).toEqual([
      [2n, [], 1],
      [3n, ["n2"], 2],
    ]);
    publisher.stop(false);
  });
});

/** A receiver fed views by hand; the asks it publishes are collected. */
function receiving() {
  const network = new LocalNetwork();
  const registry = new NodeRegistry();
  const receiver = new ViewReceiver(context(new LocalBus(network), "p", registry), link);
  const wants: ClusterViewWanted[] = [];
  new LocalBus(network).subscribe(subjects.want("h"), (data) => wants.push(fromBinary(ClusterViewWantedSchema, data)));
  const view = (sequence: bigint, ids: string[], extra: { full?: boolean; count?: number; gone?: string[] } = {}) =>
    receiver.receive(
      create(ClusterViewSchema, {
        home: "h",
        incarnation: "h-1",
        coordinatorPublicKey: coordinatorKey.publicKey,
        sequence,
        full: extra.full ?? false,
        nodeCount: extra.count ?? ids.length,
        nodes: ids.map((id) => {
          const node = testNode(id, "MID");
          node.publicKey = nodeKey;
          return clusterNodeOf(node);
        }),
        gone: extra.gone ?? [],
      }),
    );
  return { registry, receiver, view, wants };
}

describe("a peer out of step with a home", () => {
  it("asks when the home counts its nodes otherwise, and not again within CLUSTER_VIEW_MS", async () => {
    const { view, wants, receiver } = receiving();
    view(1n, ["n1", "n2"], { full: true });
    view(2n, [], { count: 3 });
    view(3n, [], { count: 3 });
    await settled();
    expect(wants).toMatchObject([{ reason: "count", sequence: 2n }]);
    view(4n, ["n1", "n2", "n3"], { full: true });
    view(5n, [], { count: 3 });
    await settled();
    expect(wants).toHaveLength(1);
    receiver.stop();
  });

  it("ignores a view it heard already, and asks at a gap even while the views go on", async () => {
    const { view, wants, registry, receiver } = receiving();
    view(1n, ["n1"], { full: true });
    view(1n, [], { gone: ["n1"], count: 0 });
    expect(registry.get("n1")?.connected).toBe(true);
    view(3n, ["n2"], { count: 2 }); // 2 was lost: n2 is taken all the same
    await settled();
    expect({ wants: wants.map((w) => w.reason), n2: registry.get("n2")?.connected }).toEqual({
      wants: ["gap"],
      n2: true,
    });
    view(1n, ["n3"], { full: true }); // a full view, whatever its number (a run that reused its incarnation)
    expect([registry.get("n1"), registry.get("n2"), registry.get("n3")?.connected]).toEqual([
      undefined,
      undefined,
      true,
    ]);
    receiver.stop();
  });

  it("asks when a node the home lists stays disconnected here for two beats, and takes it back", async () => {
    const { view, wants, registry, receiver } = receiving();
    view(1n, ["n1"], { full: true });
    const lost = registry.get("n1")!;
    expect(await lost.sendAssign(create(ConnectResponseSchema, assign))).toBe(false); // the home did not answer
    view(2n, [], { count: 1 });
    await settled();
    expect(wants).toEqual([]);
    view(3n, [], { count: 1 });
    await settled();
    expect(wants).toMatchObject([{ reason: "lost" }]);
    view(4n, ["n1"], { full: true });
    expect(registry.get("n1")).not.toBe(lost);
    expect(registry.get("n1")?.connected).toBe(true);
    receiver.stop();
  });

  it("never asks a home that predates sequences (it sends its full view every CLUSTER_VIEW_MS)", async () => {
    const { view, wants, registry, receiver } = receiving();
    view(0n, ["n1"], { full: true });
    await registry.get("n1")!.sendAssign(create(ConnectResponseSchema, assign));
    view(0n, [], { count: 0 });
    view(0n, [], { count: 0 });
    view(0n, ["n2"], { count: 0 });
    await settled();
    expect(wants).toEqual([]);
    receiver.stop();
  });
});

describe("a node's view applied again", () => {
  it("keeps the measurements made of it while the home's are unchanged, and takes new ones", () => {
    const { view, registry, receiver } = receiving();
    view(1n, ["n1"], { full: true });
    const node = registry.get("n1")!;
    const measured = node.measured;
    view(2n, ["n1"]);
    expect(node.measured).toBe(measured);
    const changed = testNode("n1", "MID");
    changed.publicKey = nodeKey;
    changed.measured.answered(30, 2_000);
    const from = { home: "h", incarnation: "h-1", coordinatorPublicKey: coordinatorKey.publicKey };
    receiver.receive(
      create(ClusterViewSchema, { ...from, sequence: 3n, nodeCount: 1, nodes: [clusterNodeOf(changed)] }),
    );
    expect(node.measured).not.toBe(measured);
    expect({ speed: node.measured.speedSamples, proven: node.measured.provenContext }).toEqual({
      speed: [30],
      proven: 2_000,
    });
    receiver.stop();
  });
});
