// What the cluster's queue costs as it grows: two coordinators' wait queues joined by their queue views over the
// in-process bus (the same code as over NATS, without the sockets), all nodes busy, W requests waiting on each. A
// change is one request leaving A's queue and another arriving (a client giving up and another asking); a node
// freeing gives one slot to the earliest waiter that can take it, on either side. Prints the CPU each costs (both
// coordinators together, this process) and the bytes A publishes a change, for each W.
// `npm run bench:cluster-queue` (CLUSTER_QUEUE_SIZES=100,1000,5000; CLUSTER_QUEUE_CHANGES=200).
import pino from "pino";
import { LocalBus, LocalNetwork } from "../coordinator/cluster/bus-local.ts";
import { type Bus, clusterSubjects } from "../coordinator/cluster/bus.ts";
import { QueueView } from "../coordinator/cluster/queue-view.ts";
import type { LiveNode } from "../coordinator/nodes/registry.ts";
import type { TaskSink } from "../coordinator/nodes/task-sink.ts";
import { WaitQueue, type Waiter } from "../coordinator/tasks/queue.ts";
import { pickNode, type RouteRequest } from "../coordinator/tasks/router.ts";
import { testNode } from "../test/support/live-nodes.ts";
import { fixed, markdownTable } from "./stats.ts";

const sizes = (process.env.CLUSTER_QUEUE_SIZES ?? "100,1000,5000").split(",").map(Number);
const changes = Number(process.env.CLUSTER_QUEUE_CHANGES ?? 200);
const NODES = 20;
const SLOTS = 4;
const sink: TaskSink = { chunk() {}, result() {}, error() {}, lost() {} };

/** Until the bus's microtasks and the views' end-of-turn publishes have run, twice (a publish, then its delivery). */
const settle = async () => {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
};

/** Counts the bytes a bus publishes. */
function counting(bus: Bus): { bus: Bus; bytes: () => number } {
  let bytes = 0;
  const publish = bus.publish.bind(bus);
  bus.publish = (subject, data) => {
    bytes += data.length;
    publish(subject, data);
  };
  return { bus, bytes: () => bytes };
}

interface Side {
  queue: WaitQueue;
  view: QueueView;
  waiters: Waiter[];
}

async function measure(size: number): Promise<string[]> {
  const network = new LocalNetwork();
  const subjects = clusterSubjects("bench");
  const logger = pino({ level: "silent" });
  const nodes: LiveNode[] = [];
  for (let i = 0; i < NODES; i++) {
    const node = testNode(`node-${i}`, "MID", { maxConcurrentTasks: SLOTS });
    for (let s = 0; s < SLOTS; s++) node.tasks.set(`task-${i}-${s}`, sink);
    nodes.push(node);
  }
  const pick = (request: RouteRequest, allow?: (node: LiveNode) => boolean) =>
    pickNode(allow ? nodes.filter(allow) : nodes, request);
  const request: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set() };
  let claimed = 0;
  let positions = 0;
  const side = (instance: string, bus: Bus): Side => {
    const view = new QueueView({ bus, subjects, instance, logger, viewMs: 60_000 });
    return { queue: new WaitQueue(size * 4, pick, 0, view), view, waiters: [] };
  };
  const a = counting(new LocalBus(network));
  const sides = [side("a", a.bus), side("b", new LocalBus(network))];
  const waiter = (): Waiter => ({
    request,
    claim: (node) => {
      claimed++;
      node.tasks.set(`claimed-${claimed}`, sink);
    },
    position: () => void positions++,
  });
  let since = Date.now();
  for (let i = 0; i < size; i++) {
    for (const s of sides) {
      const w = waiter();
      s.waiters.push(w);
      s.queue.enqueue(w, since++);
    }
    if (i % 100 === 0) await settle();
  }
  await settle();
  const [sideA] = sides as [Side, Side];
  // changes: one of A's waiters gives up, a new one arrives
  const bytes0 = a.bytes();
  let cpu0 = process.cpuUsage();
  for (let i = 0; i < changes; i++) {
    sideA.queue.remove(sideA.waiters.shift()!);
    const w = waiter();
    sideA.waiters.push(w);
    sideA.queue.enqueue(w, since++);
    await settle();
  }
  let cpu = process.cpuUsage(cpu0);
  const changeUs = (cpu.user + cpu.system) / changes;
  const changeBytes = (a.bytes() - bytes0) / changes;
  // a node frees a slot: both queues drain (the registry's capacity event), the earliest waiter takes it
  const frees = Math.min(changes, 100);
  cpu0 = process.cpuUsage();
  for (let i = 0; i < frees; i++) {
    const node = nodes[i % NODES]!;
    node.tasks.delete(node.tasks.keys().next().value!);
    for (const s of sides) s.queue.drain();
    await settle();
  }
  cpu = process.cpuUsage(cpu0);
  const freeUs = (cpu.user + cpu.system) / frees;
  for (const s of sides) s.view.stop();
  await settle();
  return [String(size), fixed(changeUs / 1000, 3), whole(changeBytes), fixed(freeUs / 1000, 3), String(claimed)];
}

const whole = (n: number) => Math.round(n).toLocaleString("en-US");

const rows: string[][] = [];
for (const size of sizes) rows.push(await measure(size));
process.stdout.write(
  `## The cluster's queue as it grows (${NODES} nodes × ${SLOTS} slots, all busy; two coordinators, ` +
    "in-process bus)\n\n" +
    markdownTable(
      [
        "requests waiting on each coordinator",
        "CPU ms a change (one leaves A's queue, one joins)",
        "bytes A publishes a change",
        "CPU ms a node freeing (both drain)",
        "slots claimed",
      ],
      rows,
      ["r", "r", "r", "r", "r"],
    ),
);
