// The cluster's queue between coordinators: a change goes as a change (its own size, not the queue's), numbered; a
// peer that missed one (found by the next change's number or by a beat's) keeps what it heard and asks the home for
// its whole queue, which mends it; nothing goes out a second but a beat while nothing is lost; a long queue goes in
// parts; a coordinator that knows no peer publishes nothing; the counts a peer makes of the requests ahead. Over the
// in-process bus, a wrapper losing the messages a test says.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import {
  ClusterQueueBeatSchema,
  ClusterQueueChangeSchema,
  ClusterQueueSchema,
  ClusterQueueWantedSchema,
} from "../../gen/iris/v1/cluster_pb.ts";
import { Difficulty } from "../../gen/iris/v1/common_pb.ts";
import { testNode } from "../../test/support/live-nodes.ts";
import { lossyBus } from "../../test/support/lossy-bus.ts";
import type { QueuedWaiter } from "../tasks/queue.ts";
import type { RouteRequest } from "../tasks/router.ts";
import { type Bus, clusterSubjects } from "./bus.ts";
import { LocalBus, LocalNetwork } from "./bus-local.ts";
import { FULL_EVERY_BEATS } from "./node-view.ts";
import { QueueView, type QueueViewContext } from "./queue-view.ts";

const subjects = clusterSubjects("t");
const simple: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set() };
const advanced: RouteRequest = { difficulty: "ADVANCED", model: undefined, exclude: new Set() };
const waiter = (id: string, since: number, request = simple): QueuedWaiter => ({ id, since, request });

/** The turns a change takes: the sender's end of turn, the bus's microtask. */
const settled = async (turns = 3) => {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

const views: QueueView[] = [];
afterEach(() => {
  for (const view of views.splice(0)) view.stop();
});

function view(bus: Bus, instance: string, options: Partial<QueueViewContext> = {}): QueueView {
  const made = new QueueView({
    bus,
    subjects,
    instance,
    logger: pino({ level: "silent" }),
    viewMs: 60_000,
    ...options,
  });
  views.push(made);
  return made;
}

/**
 * Coordinator "a" (over a bus that loses what `lose` says, on `subject`) and its peer "b", and a record of what
 * crosses between them; both know each other, as after their views met.
 */
async function pair(options: { subject?: string; a?: Partial<QueueViewContext>; b?: Partial<QueueViewContext> } = {}) {
  const network = new LocalNetwork();
  const lossy = lossyBus(new LocalBus(network), options.subject ?? subjects.queueChanges);
  const a = view(lossy.bus, "a", options.a);
  const peerBus = new LocalBus(network);
  const listener = new LocalBus(network); // hears what crosses, b's asks too (a bus never hears its own)
  const heard = {
    changes: [] as Uint8Array[],
    wholes: [] as Uint8Array[],
    asks: [] as Uint8Array[],
    beats: [] as bigint[],
  };
  listener.subscribe(subjects.queueBeats, (data) => {
    const beat = fromBinary(ClusterQueueBeatSchema, data);
    if (beat.home === "a") heard.beats.push(beat.sequence);
  });
  listener.subscribe(subjects.queueChanges, (data) => heard.changes.push(data));
  listener.subscribe(subjects.queue, (data) => heard.wholes.push(data));
  listener.subscribe(subjects.queueWant("a"), (data) => heard.asks.push(data));
  const b = view(peerBus, "b", options.b);
  a.joined();
  await settled();
  return { a, b, lose: lossy.state, heard };
}

describe("the cluster's queue", () => {
  it("sends a change as a change: a few dozen bytes, however long the queue", async () => {
    const { a, b, heard } = await pair();
    for (let i = 0; i < 500; i++) a.added(waiter(`w${i}`, 1_000 + i));
    await settled();
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(500);
    heard.changes.length = 0;
    a.removed("w0");
    a.added(waiter("late", 5_000));
    await settled();
    expect(heard.changes).toHaveLength(1); // one message for the turn's two changes
    const change = fromBinary(ClusterQueueChangeSchema, heard.changes[0]!);
    expect(change).toMatchObject({ home: "a", removed: ["w0"], added: [{ id: "late" }] });
    expect(heard.changes[0]!.length).toBeLessThan(120);
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(500);
    expect(b.countBefore(1_001)).toBe(0); // w0 is gone
    expect(b.countBefore(1_010)).toBe(9); // w1..w9
  });

  it("tells nothing of a request that came and went within one turn", async () => {
    const { a, b, heard } = await pair();
    heard.changes.length = 0;
    a.added(waiter("brief", 1_000));
    a.removed("brief");
    await settled();
    expect(heard.changes).toHaveLength(0);
    expect(b.othersWaiting).toBe(false);
  });

  it("after a lost change, a peer keeps what it heard and asks for the whole queue, which mends it", async () => {
    // the peer's asks only once a CLUSTER_VIEW_MS (a minute here): a second gap waits for the home's whole queue
    const { a, b, lose, heard } = await pair();
    a.added(waiter("w1", 1_000));
    await settled();
    lose.lose = 2;
    a.added(waiter("w2", 2_000)); // lost
    await settled();
    a.removed("w1"); // lost
    await settled();
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(1);
    expect(heard.asks).toHaveLength(0); // nothing shows the gap yet
    const wholes = heard.wholes.length;
    a.added(waiter("w3", 3_000)); // numbered after the lost ones: not applied; the peer asks
    await settled(1);
    expect(heard.asks).toHaveLength(1);
    expect(fromBinary(ClusterQueueWantedSchema, heard.asks[0]!)).toMatchObject({ origin: "b", reason: "gap" });
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(1); // what it heard, unchanged, until the answer
    await settled();
    expect(heard.wholes.length).toBe(wholes + 1);
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(2); // w2 and w3
    a.added(waiter("w4", 4_000)); // and changes apply again
    await settled();
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(3);
    expect(heard.asks).toHaveLength(1);
  });

  it("a beat shows a peer the last change it missed; nothing else goes out while nothing is lost", async () => {
    const { a, b, lose, heard } = await pair({ a: { viewMs: 40 }, b: { viewMs: 40 } });
    a.added(waiter("w1", 1_000));
    await settled();
    lose.lose = 1;
    a.removed("w1"); // lost, and no change follows it
    await settled();
    expect(b.othersWaiting).toBe(true);
    // the next beat carries the home's number: the peer asks and the whole (empty) queue mends it
    await expect.poll(() => b.othersWaiting, { timeout: 2_000 }).toBe(false);
    expect(heard.asks.length).toBe(1);
    // in step: beats carrying the number of the last message (the whole queue), no whole queue and no ask
    const wholes = heard.wholes.length;
    const fromA = heard.wholes.map((data) => fromBinary(ClusterQueueSchema, data)).filter((q) => q.home === "a");
    const last = fromA.at(-1)!.sequence;
    const beats = heard.beats.length;
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(heard.beats.length).toBeGreaterThan(beats + 1);
    expect(heard.beats.slice(beats)).toEqual(heard.beats.slice(beats).map(() => last));
    expect(heard.wholes.length).toBe(wholes);
    expect(heard.asks.length).toBe(1);
  });

  it("sends the whole queue every FULL_EVERY_BEATS beats while any wait or after a change, none after", async () => {
    // for a peer of an earlier version, which never asks
    const { a, heard } = await pair({ a: { viewMs: 5 } });
    a.added(waiter("w1", 1_000));
    await settled();
    const since = heard.wholes.length;
    await expect.poll(() => heard.wholes.length > since, { timeout: 3_000 }).toBe(true);
    a.removed("w1");
    await settled();
    const emptied = heard.wholes.length;
    const emptyWhole = () =>
      heard.wholes.slice(emptied).some((data) => fromBinary(ClusterQueueSchema, data).waiters.length === 0);
    await expect.poll(emptyWhole, { timeout: 3_000 }).toBe(true);
    const wholes = heard.wholes.length;
    await new Promise((resolve) => setTimeout(resolve, 2 * FULL_EVERY_BEATS * 5 + 100));
    expect(heard.wholes.length).toBe(wholes);
  });

  it("sends a long queue in parts that a peer takes once it heard them all, in order", async () => {
    const { a, b, lose, heard } = await pair({ subject: subjects.queue, a: { partWaiters: 3 } });
    for (let i = 0; i < 7; i++) a.added(waiter(`w${i}`, 1_000 + i));
    await settled();
    heard.wholes.length = 0;
    a.joined();
    await settled();
    const parts = heard.wholes.map((data) => fromBinary(ClusterQueueSchema, data));
    expect(parts.map((p) => [p.part, p.parts, p.waiters.length])).toEqual([
      [1, 3, 3],
      [2, 3, 3],
      [3, 3, 1],
    ]);
    // after the whole (empty) queue the peers met with and the one change that added the 7
    expect(parts.map((p) => Number(p.sequence))).toEqual([3, 4, 5]);
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(7);
    // a lost part: what the peer holds stays as it was (7), not the partial 3 + 1
    a.removed("w0");
    a.removed("w1");
    await settled();
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(5);
    lose.after = 0;
    lose.lose = 1; // the first part of the next whole queue
    a.added(waiter("w7", 2_000));
    a.joined();
    await settled();
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(5);
    expect(heard.asks).toHaveLength(0);
    a.added(waiter("w8", 2_001)); // numbered after the parts: the peer sees the gap and asks for the whole queue
    await settled(4);
    expect(heard.asks).toHaveLength(1);
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(7);
  });

  it("publishes nothing while it knows no peer, and numbers what it did not send, so a peer sees the gap", async () => {
    let peers = true;
    const { a, b, heard } = await pair({ a: { hasPeers: () => peers } });
    a.added(waiter("w1", 1_000));
    await settled();
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(1);
    peers = false;
    heard.changes.length = 0;
    a.added(waiter("w2", 2_000));
    await settled();
    expect(heard.changes).toHaveLength(0);
    peers = true;
    a.added(waiter("w3", 3_000));
    await settled();
    expect(heard.changes).toHaveLength(1);
    // w2 was never heard, so w3 is not applied: the peer asks for the whole queue, which has all three
    expect(heard.asks).toHaveLength(1);
    await settled();
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(3);
  });

  it("counts for a node only the earlier waiters that can take it; its own change counts next turn", async () => {
    const { a, b } = await pair();
    a.added(waiter("simple-early", 1_000));
    a.added(waiter("advanced-early", 1_500, advanced));
    a.added(waiter("simple-late", 3_000));
    await settled();
    const mid = testNode("mid", "MID", { maxConcurrentTasks: 2 });
    expect(b.aheadFor(mid, 2_000)).toBe(1); // a MID node serves SIMPLE, not ADVANCED
    expect(b.aheadFor(mid, 4_000)).toBe(2);
    mid.suspended = true; // no peer waiter can take a suspended node: heard from the next turn on
    await settled(1);
    expect(b.aheadFor(mid, 4_000)).toBe(0);
    const full = testNode("full", "MID", { maxConcurrentTasks: 1 });
    full.tasks.set("t", { chunk() {}, result() {}, error() {}, lost() {} });
    expect(b.aheadFor(full, 4_000)).toBe(0); // no free slot: none ahead for it
    expect(b.countBefore(1_500)).toBe(1);
    expect(b.countBefore(1_501)).toBe(2);
  });

  it("a coordinator that stops takes its waiters out of its peers' queue at once", async () => {
    const { a, b } = await pair();
    a.added(waiter("w1", 1_000));
    await settled();
    expect(b.othersWaiting).toBe(true);
    a.stop();
    await settled();
    expect(b.othersWaiting).toBe(false);
  });

  it("takes an unnumbered whole queue (a peer of an earlier version) and no change after it", async () => {
    const network = new LocalNetwork();
    const b = view(new LocalBus(network), "b");
    const old = new LocalBus(network);
    const whole = create(ClusterQueueSchema, {
      home: "old",
      waiters: [{ id: "o1", enqueuedAtUnixMs: 1_000n, route: { difficulty: Difficulty.SIMPLE } }],
    });
    old.publish(subjects.queue, toBinary(ClusterQueueSchema, whole));
    await settled();
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(1);
    const change = create(ClusterQueueChangeSchema, { home: "old", sequence: 1n, removed: ["o1"] });
    old.publish(subjects.queueChanges, toBinary(ClusterQueueChangeSchema, change));
    await settled();
    expect(b.countBefore(Number.MAX_SAFE_INTEGER)).toBe(1);
  });
});
