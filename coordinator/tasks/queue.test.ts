// The wait queue on its own: free slots go to waiters in arrival order, a waiter that cannot use a free node lets a
// later one take it, a drain stops when the free slots are gone, and a slot owed to an earlier waiter on another
// coordinator is left to it; positions count the waiters ahead here and there.
import { describe, expect, it } from "vitest";
import { testNode } from "../../test/support/live-nodes.ts";
import { NodeRegistry, type LiveNode } from "../nodes/registry.ts";
import type { TaskSink } from "../nodes/task-sink.ts";
import { type QueuedWaiter, type QueuePeers, WaitQueue, type Waiter } from "./queue.ts";
import type { RouteRequest } from "./router.ts";

const sink: TaskSink = { chunk() {}, result() {}, error() {}, lost() {} };
const simple: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set() };
const advanced: RouteRequest = { difficulty: "ADVANCED", model: undefined, exclude: new Set() };

/** A node of `tier` with `slots`, all taken. */
function busy(id: string, tier: "MID" | "PRO", slots = 1): LiveNode {
  const node = testNode(id, tier, { maxConcurrentTasks: slots });
  for (let i = 0; i < slots; i++) node.tasks.set(`${id}-${i}`, sink);
  return node;
}

/** A waiter that records the node it got (taking its slot, as an Attempt does) and the positions it heard. */
function waiter(name: string, request: RouteRequest = simple) {
  const heard = { name, node: undefined as LiveNode | undefined, positions: [] as number[] };
  const made: Waiter = {
    request,
    claim(node) {
      heard.node = node;
      node.tasks.set(`claimed-by-${name}`, sink);
    },
    position: (position) => void heard.positions.push(position),
  };
  return { waiter: made, heard };
}

const free = (node: LiveNode) => node.tasks.delete(node.tasks.keys().next().value!);

describe("WaitQueue", () => {
  it("gives a freed slot to the earliest waiter, and each waiter behind it hears its new place", () => {
    const node = busy("n", "MID");
    const queue = new WaitQueue(10, () => [node]);
    const [a, b, c] = ["a", "b", "c"].map((name) => waiter(name));
    for (const w of [a!, b!, c!]) queue.enqueue(w.waiter);
    expect([a!.heard.positions, b!.heard.positions, c!.heard.positions]).toEqual([[1], [2], [3]]);
    free(node);
    queue.drain();
    expect(a!.heard.node).toBe(node);
    expect(b!.heard.node).toBeUndefined();
    expect([b!.heard.positions.at(-1), c!.heard.positions.at(-1)]).toEqual([1, 2]);
    expect(queue.length).toBe(2);
  });

  it("reads no node on a task's end while nobody waits, and all of them once someone does", () => {
    // every task's end drains the queue: with 10,000 idle nodes, reading them all cost ~0.36 ms a task
    const nodes = Array.from({ length: 3 }, (_, i) => testNode(`idle-${i}`, "MID"));
    let reads = 0;
    const queue = new WaitQueue(10, function* () {
      for (const node of nodes) {
        reads++;
        yield node;
      }
    });
    for (let i = 0; i < 5; i++) queue.drain();
    expect(reads).toBe(0);
    const w = waiter("w");
    queue.enqueue(w.waiter);
    queue.drain();
    expect(reads).toBe(3);
    expect(w.heard.node).toBe(nodes[0]);
    expect(queue.length).toBe(0);
  });

  it("offers a waiter the free nodes of its serving tiers only: idle small nodes are not read for a large one", () => {
    // a request waiting for a PRO node while 50 BASIC nodes are idle: each task's end used to read all 50
    const registry = new NodeRegistry();
    for (let i = 0; i < 50; i++) registry.add(testNode(`basic-${i}`, "BASIC"));
    const pro = busy("pro", "PRO");
    registry.add(pro);
    const read: string[] = [];
    const queue = new WaitQueue(10, function* (difficulty) {
      for (const node of registry.nodesWithRoom(difficulty)) {
        read.push(node.id);
        yield node;
      }
    });
    const hard = waiter("hard", advanced);
    queue.enqueue(hard.waiter);
    for (let i = 0; i < 5; i++) queue.drain();
    expect(read).toEqual([]);
    free(pro);
    queue.drain();
    expect(read).toEqual(["pro"]);
    expect(hard.heard.node).toBe(pro);
  });

  it("lets a later waiter take a node the earlier cannot use, and stops once the free slots are taken", () => {
    const mid = busy("mid", "MID", 2);
    const pro = busy("pro", "PRO");
    const queue = new WaitQueue(10, () => [mid, pro]);
    const hard = waiter("hard", advanced); // only PRO serves ADVANCED
    const easy = [1, 2, 3].map((i) => waiter(`easy-${i}`));
    queue.enqueue(hard.waiter);
    for (const w of easy) queue.enqueue(w.waiter);
    free(mid);
    free(mid);
    queue.drain();
    expect(hard.heard.node).toBeUndefined();
    expect(easy.map((w) => w.heard.node?.id)).toEqual(["mid", "mid", undefined]);
    free(pro);
    queue.drain();
    expect(hard.heard.node).toBe(pro); // first in line for the node it can use
    expect(easy[2]!.heard.node).toBeUndefined();
    expect(queue.length).toBe(1);
  });

  it("leaves a slot to an earlier waiter on another coordinator, and counts it in positions", () => {
    const node = busy("n", "MID");
    const peerWaiters: QueuedWaiter[] = [{ id: "there", since: 1_000, request: simple }];
    const peers: QueuePeers = {
      countBefore: (since) => peerWaiters.filter((w) => w.since < since).length,
      aheadFor: (candidate, since) => (candidate.freeSlots > 0 ? peerWaiters.filter((w) => w.since < since).length : 0),
      added() {},
      removed() {},
      onChange() {},
    };
    const queue = new WaitQueue(10, () => [node], 0, peers);
    const here = waiter("here");
    queue.enqueue(here.waiter, 2_000);
    expect(here.heard.positions).toEqual([2]);
    free(node);
    queue.drain();
    expect(here.heard.node).toBeUndefined(); // the slot is owed to the waiter elsewhere
    peerWaiters.length = 0; // it took the slot (its coordinator said so)
    queue.drain();
    expect(here.heard.node).toBe(node);
  });

  it("tells a waiter its place when it moved, not on each change elsewhere; the periodic update repeats", async () => {
    const peerWaiters: QueuedWaiter[] = [];
    let changed = () => {};
    const peers: QueuePeers = {
      countBefore: (since) => peerWaiters.filter((w) => w.since < since).length,
      aheadFor: () => 0,
      added() {},
      removed() {},
      onChange: (listener) => void (changed = listener),
    };
    const queue = new WaitQueue(10, () => [busy("n", "MID")], 0, peers);
    const here = waiter("here");
    queue.enqueue(here.waiter, 2_000);
    peerWaiters.push({ id: "later", since: 3_000, request: simple });
    changed(); // a request joined another coordinator's queue behind this one: no message
    expect(here.heard.positions).toEqual([1]);
    peerWaiters.push({ id: "earlier", since: 1_000, request: simple });
    changed();
    expect(here.heard.positions).toEqual([1, 2]);
    const periodic = new WaitQueue(10, () => [busy("m", "MID")], 10);
    const polled = waiter("polled");
    periodic.enqueue(polled.waiter);
    await expect.poll(() => polled.heard.positions.length).toBeGreaterThan(2);
    periodic.remove(polled.waiter); // stops the timer
    expect(new Set(polled.heard.positions)).toEqual(new Set([1]));
  });

  it("tells its peers who begins and stops waiting: joins, departures and claims", () => {
    const node = busy("n", "MID");
    const told: string[] = [];
    const peers: QueuePeers = {
      countBefore: () => 0,
      aheadFor: () => 0,
      added: (w) => void told.push(`+${w.since}`),
      removed: () => void told.push("-"),
      onChange() {},
    };
    const queue = new WaitQueue(10, () => [node], 0, peers);
    const [a, b] = [waiter("a"), waiter("b")];
    queue.enqueue(a.waiter, 1);
    queue.enqueue(b.waiter, 2);
    queue.remove(b.waiter);
    free(node);
    queue.drain();
    expect(told).toEqual(["+1", "+2", "-", "-"]);
    expect(queue.length).toBe(0);
  });
});
