// What the cluster's queue costs as it grows: two coordinators' wait queues joined by their queue views over the
// in-process bus (the same code as over NATS, without the sockets), all nodes busy, W requests waiting on each. A
// change is one request leaving A's queue and another arriving (a client giving up and another asking); a node
// freeing gives one slot to the earliest waiter that can take it, on either side. Prints the CPU each costs (both
// coordinators together, this process) and the bytes A publishes a change, for each W. Then one coordinator's own
// queue as its chats see it (the node acquirer): W requests waiting on N busy nodes, each told its position and
// estimated wait whenever they change; a slot freeing moves every waiter behind it up one. Prints its CPU. Last, what
// a queue costs while nothing changes: W requests waiting on A, its beats (and its whole queue every FULL_EVERY_BEATS
// beats, for peers of earlier versions) over 30 beats of 20 ms, per beat (CLUSTER_VIEW_MS, a second by default).
// `npm run bench:cluster-queue` (CLUSTER_QUEUE_SIZES=100,1000,5000; CLUSTER_QUEUE_CHANGES=200).
import pino from "pino";
import { NodeRegistry } from "../coordinator/nodes/registry.ts";
import type { Attempt } from "../coordinator/tasks/attempt.ts";
import { NodeAcquirer } from "../coordinator/tasks/node-acquirer.ts";
import type { PartSpec } from "../coordinator/tasks/part-spec.ts";
import { LocalBus, LocalNetwork } from "../coordinator/cluster/bus-local.ts";
import { type Bus, clusterSubjects } from "../coordinator/cluster/bus.ts";
import { FULL_EVERY_BEATS } from "../coordinator/cluster/node-view.ts";
import { QueueView } from "../coordinator/cluster/queue-view.ts";
import type { LiveNode } from "../coordinator/nodes/registry.ts";
import type { TaskSink } from "../coordinator/nodes/task-sink.ts";
import { WaitQueue, type Waiter } from "../coordinator/tasks/queue.ts";
import type { RouteRequest } from "../coordinator/tasks/router.ts";
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

/** Counts the bytes a bus publishes, and tells `published` (when given) the subject of each, after it went out. */
function counting(bus: Bus, published?: (subject: string) => void): { bus: Bus; bytes: () => number } {
  let bytes = 0;
  const publish = bus.publish.bind(bus);
  bus.publish = (subject, data) => {
    bytes += data.length;
    publish(subject, data);
    published?.(subject);
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
  const request: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set() };
  let claimed = 0;
  let positions = 0;
  const side = (instance: string, bus: Bus): Side => {
    const view = new QueueView({ bus, subjects, instance, logger, viewMs: 60_000 });
    return { queue: new WaitQueue(size * 4, () => nodes, 0, view), view, waiters: [] };
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

/** The beat of the idle phase (CLUSTER_VIEW_MS, shortened so that FULL_EVERY_BEATS beats take little time). */
const IDLE_BEAT_MS = 20;

/** `size` requests waiting on A, none on B, nothing changing: CPU (both) and bytes A publishes a beat. */
async function measureIdle(size: number): Promise<string[]> {
  const network = new LocalNetwork();
  const subjects = clusterSubjects("bench");
  const logger = pino({ level: "silent" });
  // from one whole queue of A's to the next: FULL_EVERY_BEATS beats (its parts go out in one call)
  let wholeSent: (() => void) | undefined;
  let lastWhole = 0;
  const a = counting(new LocalBus(network), (subject) => {
    if (subject !== subjects.queue || performance.now() - lastWhole < IDLE_BEAT_MS / 2) return;
    lastWhole = performance.now();
    wholeSent?.();
  });
  const nextWhole = () => new Promise<void>((resolve) => (wholeSent = resolve));
  const hold = setInterval(() => {}, 1_000); // the views' timers do not keep the process alive
  const viewOf = (bus: Bus, instance: string) =>
    new QueueView({ bus, subjects, instance, logger, viewMs: IDLE_BEAT_MS });
  const views = [viewOf(a.bus, "a"), viewOf(new LocalBus(network), "b")];
  const request: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set() };
  for (let i = 0; i < size; i++) views[0]!.added({ id: `w${i}`, since: 1_000 + i, request });
  await nextWhole();
  const bytes0 = a.bytes();
  const cpu0 = process.cpuUsage();
  await nextWhole();
  await settle(); // the peer's decoding of it
  const cpu = process.cpuUsage(cpu0);
  const bytes = a.bytes() - bytes0;
  clearInterval(hold);
  for (const view of views) view.stop();
  await settle();
  const beats = FULL_EVERY_BEATS;
  return [String(size), fixed((cpu.user + cpu.system) / beats / 1000, 3), whole(bytes / beats)];
}

/** One coordinator: `size` requests waiting through the node acquirer on `nodeCount` busy nodes; CPU a freed slot. */
async function measureAcquirer(size: number, nodeCount: number): Promise<string[]> {
  const registry = new NodeRegistry();
  const held: Attempt[] = [];
  const acquirer = new NodeAcquirer({
    registry,
    queue: { maxLength: size * 2, maxWaitMs: 3_600_000, updateMs: 0 },
    now: Date.now,
  });
  for (let i = 0; i < nodeCount; i++) {
    const node = testNode(`node-${i}`, "MID", { maxConcurrentTasks: SLOTS });
    for (let s = 0; s < 20; s++) node.served(5_000 + s * 100);
    registry.add(node);
  }
  const request: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set() };
  const stop = new AbortController();
  const spec = { wait: "queue", signal: stop.signal } as PartSpec;
  let told = 0;
  let next = 0;
  const wait = async () => {
    const waiting = acquirer.acquire(`task-${next++}`, request, spec, {});
    for (;;) {
      const step = await waiting.next();
      if (step.done) return void held.push(step.value);
      told++;
    }
  };
  const waiting: Promise<void>[] = [];
  // every slot taken, then `size` waiting
  for (let i = 0; i < nodeCount * SLOTS + size; i++) waiting.push(wait());
  await settle();
  const frees = Math.min(changes, 100);
  told = 0;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < frees; i++) {
    held.shift()!.end(); // a task ends: the earliest waiter takes its slot, every one behind it moves up
    waiting.push(wait()); // and another request joins the queue
    await settle();
  }
  const cpu = process.cpuUsage(cpu0);
  stop.abort(); // the rest stop waiting
  await Promise.allSettled(waiting);
  return [String(size), String(nodeCount), fixed((cpu.user + cpu.system) / frees / 1000, 3), whole(told / frees)];
}

const rows: string[][] = [];
for (const size of sizes) rows.push(await measure(size));
const idleRows: string[][] = [];
for (const size of sizes) idleRows.push(await measureIdle(size));
const acquirerRows: string[][] = [];
for (const size of sizes)
  for (const nodeCount of [NODES, 200]) acquirerRows.push(await measureAcquirer(size, nodeCount));
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
    ) +
    `\n## One coordinator's queue through the node acquirer (${SLOTS} slots a node, all busy)\n\n` +
    markdownTable(
      ["requests waiting", "nodes", "CPU ms a slot freeing (positions and estimates told)", "waiters told a freeing"],
      acquirerRows,
      ["r", "r", "r", "r"],
    ) +
    `\n## A queue while nothing changes (requests waiting on A; ${FULL_EVERY_BEATS} beats of ${IDLE_BEAT_MS} ms, ` +
    "the whole queue once among them)\n\n" +
    markdownTable(
      ["requests waiting on A", "CPU ms a beat (both coordinators)", "bytes A publishes a beat"],
      idleRows,
      ["r", "r", "r"],
    ),
);
