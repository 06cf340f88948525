// Full views that answer some peers (their asks, their arrival) name them: a peer in step with the home passes over
// one for others (a beat to it, its nodes unread) and still hears the changes the home held back, after it; a peer
// named, out of step, or hearing a full view for everyone reads it whole. Over the in-process bus.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ClusterViewSchema, ClusterViewWantedSchema } from "../../gen/iris/v1/cluster_pb.ts";
import { context, coordinatorKey, link, settled, setup, subjects } from "../../test/support/node-view-harness.ts";
import { NodeRegistry } from "../nodes/registry.ts";
import { LocalBus, type LocalNetwork } from "./bus-local.ts";
import { clusterNodeOf, readViewHeadline } from "./codec.ts";
import type { RemoteNode } from "./remote-node.ts";
import { ViewReceiver } from "./view-receiver.ts";
import { ViewStream } from "./view-stream.ts";

/** A second peer, "q", on the setup's network. */
function secondPeer(network: LocalNetwork) {
  const registry = new NodeRegistry();
  const receiver = new ViewReceiver(context(new LocalBus(network), "q", registry), link);
  return { registry, receiver, remote: (id: string) => registry.get(id) as RemoteNode | undefined };
}

const sink = { chunk() {}, result() {}, error() {}, lost() {} };

describe("full views for some peers", () => {
  it("names whom it answers; a peer in step passes over one for others, then hears the change held back", async () => {
    // no peer has requests waiting: a slot's change waits SLOT_VIEW_DELAY_MS, and is pending when the ask comes
    const { network, publisher, join, heard, connect, remote, stop } = setup({ othersWaiting: () => false });
    const p = join();
    const q = secondPeer(network);
    const n1 = connect("n1");
    connect("n2");
    await settled();
    expect([remote("n1")?.freeSlots, q.remote("n2")?.connected]).toEqual([1, true]);
    n1.tasks.set("t1", sink);
    publisher.wantFull("r");
    await settled();
    const [full, after] = heard.views.slice(-2);
    expect(full).toMatchObject({ full: true, askers: ["r"], nodeCount: 2 });
    expect(after).toMatchObject({ full: false, askers: [] });
    expect(after!.nodes.map((node) => node.nodeId)).toEqual(["n1"]);
    expect([p.passedOver, q.receiver.passedOver]).toEqual([1, 1]);
    // the change the full view also carried reached them in the delta after it
    expect([remote("n1")?.freeSlots, q.remote("n1")?.freeSlots]).toEqual([0, 0]);
    publisher.beat();
    await settled();
    expect(heard.wants).toEqual([]); // still in step: the full view counted as the view it was
    q.receiver.stop();
    stop();
  });

  it("is read whole by a peer it names, by every peer when it is for all, and by a peer out of step", async () => {
    const { network, home, publisher, join, heard, connect, remote, stop } = setup();
    const p = join();
    const q = secondPeer(network);
    connect("n1");
    await settled();
    publisher.wantFull("p");
    await settled();
    expect(heard.views.at(-1)).toMatchObject({ full: true, askers: ["p"] });
    expect([p.passedOver, q.receiver.passedOver]).toEqual([0, 1]);
    publisher.publishFull(); // every 30th beat, a coordinator's first view: for all
    await settled();
    expect(heard.views.at(-1)).toMatchObject({ full: true, askers: [] });
    expect([p.passedOver, q.receiver.passedOver]).toEqual([0, 1]);
    // both miss the view of a new node; a full view for another peer comes next, and puts them back in step
    home.state.lose = 1;
    connect("n2");
    await settled();
    publisher.wantFull("r");
    await settled();
    expect(heard.views.at(-1)).toMatchObject({ full: true, askers: ["r"], nodeCount: 2 });
    expect([p.passedOver, q.receiver.passedOver]).toEqual([0, 1]);
    expect([remote("n2")?.connected, q.remote("n2")?.connected]).toEqual([true, true]);
    // a lost change that leaves the count as it was (n1 paused): the numbers show it, and the next full view is read
    home.state.lose = 1;
    home.registry.get("n1")!.paused = true;
    await settled();
    publisher.wantFull("r");
    await settled();
    expect([p.passedOver, q.receiver.passedOver]).toEqual([0, 1]);
    expect([remote("n1")?.paused, q.remote("n1")?.paused]).toEqual([true, true]);
    publisher.beat();
    await settled();
    expect(heard.wants).toEqual([]);
    q.receiver.stop();
    stop();
  });

  it("in parts, names whom it answers in each; a peer in step passes over every part, keeps every node", async () => {
    const { network, publisher, join, heard, connectMany, remote, stop } = setup({ partBytes: 2_000 });
    const p = join();
    const q = secondPeer(network);
    const ids = connectMany(24);
    await settled();
    const from = heard.views.length;
    publisher.wantFull("r");
    publisher.wantFull("s"); // asked while the first is still to be encoded: one full view answers both
    await settled(40);
    const parts = heard.views.slice(from);
    expect(parts.length).toBeGreaterThan(2);
    expect(parts.map((view) => [view.part, view.parts, view.askers])).toEqual(
      parts.map((_, i) => [i + 1, parts.length, ["r", "s"]]),
    );
    expect([p.passedOver, q.receiver.passedOver]).toEqual([parts.length, parts.length]);
    expect(ids.every((id) => remote(id)?.connected && q.remote(id)?.connected)).toBe(true);
    publisher.beat();
    await settled();
    expect(heard.wants).toEqual([]);
    q.receiver.stop();
    stop();
  });
});

describe("asks from before the latest full view", () => {
  it("are answered by it when it was for everyone or names the asker, and by another when it does not", async () => {
    const { network, publisher, heard, connect, stop } = setup();
    connect("n1");
    await settled();
    const asker = new LocalBus(network);
    const ask = (origin: string, sequence: bigint) =>
      asker.publish(
        subjects.want("h"),
        toBinary(
          ClusterViewWantedSchema,
          create(ClusterViewWantedSchema, { origin, incarnation: "h-1", sequence, reason: "lost" }),
        ),
      );
    const fulls = () => heard.views.filter((view) => view.full).map((view) => [view.sequence, view.askers]);
    publisher.wantFull("r");
    await settled();
    expect(fulls()).toEqual([[2n, ["r"]]]);
    ask("r", 1n); // heard before the view that names it: on its way to it
    await settled();
    expect(fulls()).toHaveLength(1);
    ask("p", 1n); // a peer in step that lost a node passes over a view for others: it needs one of its own
    await settled();
    expect(fulls()).toEqual([
      [2n, ["r"]],
      [3n, ["p"]],
    ]);
    publisher.publishFull();
    ask("q", 3n); // before a view for everyone: answered by it
    await settled();
    expect(fulls().map(([sequence]) => sequence)).toEqual([2n, 3n, 4n]);
    stop();
  });
});

describe("a peer in step", () => {
  it("is one that heard every view of the run in order, the next one's number given, and holds as many nodes", () => {
    const stream = new ViewStream();
    expect(stream.inStep(1n, 0)).toBe(false); // nothing heard yet
    stream.heard(1n, true);
    stream.listed.add("n1");
    expect(stream.inStep(2n, 1)).toBe(true);
    expect(stream.inStep(3n, 1)).toBe(false); // a view between was missed
    expect(stream.inStep(2n, 2)).toBe(false); // the home counts a node not held here
    stream.part({ full: false, part: 1, parts: 3 });
    expect(stream.inStep(2n, 1)).toBe(false); // a full view in parts half heard
    stream.part({ full: true, part: 0, parts: 0 });
    stream.heard(3n, false); // a gap
    expect(stream.inStep(4n, 1)).toBe(false);
  });
});

describe("a view's headline", () => {
  it("reads what fromBinary reads of every field but the nodes and gone ids, past fields it does not know", () => {
    const { connect, stop } = setup();
    const nodes = [clusterNodeOf(connect("n1")), clusterNodeOf(connect("n2"))];
    const view = create(ClusterViewSchema, {
      home: "h",
      coordinatorPublicKey: coordinatorKey.publicKey,
      full: true,
      nodes,
      gone: ["old"],
      incarnation: "h-1",
      sequence: 2n ** 40n,
      nodeCount: 2,
      part: 3,
      parts: 7,
      askers: ["p", "q"],
    });
    // a field of a later version (number 99, a varint) after the known ones
    const bytes = Buffer.concat([toBinary(ClusterViewSchema, view), Buffer.from([0x98, 0x06, 0x05])]);
    const {
      nodes: _nodes,
      gone: _gone,
      $typeName: _type,
      $unknown: _unknown,
      ...header
    } = fromBinary(ClusterViewSchema, bytes);
    expect(readViewHeadline(bytes)).toEqual({ ...header, coordinatorPublicKey: expect.any(Uint8Array) });
    expect(Buffer.from(readViewHeadline(bytes).coordinatorPublicKey)).toEqual(Buffer.from(coordinatorKey.publicKey));
    expect(() => readViewHeadline(bytes.subarray(0, 40))).toThrow();
    stop();
  });
});
