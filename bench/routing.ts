// What choosing a node costs a request as the network grows: N connected nodes (one slot each), a share of them busy,
// and each request doing what a chat does before its assign: the classifier's node link looks for an idle node
// (pickIdleClassifierNodes), routing picks the best free node (pickNode) and takes its slot; then another task ends, so
// the share stays busy. Read over every node (registry.nodes(), as before the index) and over the nodes with a free
// slot (registry.nodesWithRoom(), the index routing uses), alternating, in this process; CPU µs a request, the median
// of the rounds. `npm run bench:routing` (ROUTING_NODES=1000,10000; ROUTING_BUSY=0,50,90,99,100;
// ROUTING_REQUESTS=2000).
import { NodeRegistry, type LiveNode } from "../coordinator/nodes/registry.ts";
import type { TaskSink } from "../coordinator/nodes/task-sink.ts";
import { pickIdleClassifierNodes } from "../coordinator/tasks/classify/node.ts";
import { pickNode, type RouteRequest } from "../coordinator/tasks/router.ts";
import { testNode } from "../test/support/live-nodes.ts";
import { ascending, fixed, markdownTable, percentile } from "./stats.ts";

const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(",").map(Number);
const nodeCounts = list("ROUTING_NODES", "1000,10000");
const busyShares = list("ROUTING_BUSY", "0,50,90,99,100");
const requests = Number(process.env.ROUTING_REQUESTS ?? 2000);
const ROUNDS = 5;
const sink: TaskSink = { chunk() {}, result() {}, error() {}, lost() {} };
const request: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set() };

type Read = (registry: NodeRegistry) => Iterable<LiveNode>;
const everyNode: Read = (registry) => registry.nodes();
const withRoom: Read = (registry) => registry.nodesWithRoom();

/** A registry of `count` nodes, `busyPercent` of them running a task, and the running tasks in the order they end. */
function network(count: number, busyPercent: number) {
  const registry = new NodeRegistry();
  const running: [LiveNode, string][] = [];
  const busy = Math.round((count * busyPercent) / 100);
  for (let i = 0; i < count; i++) {
    // speeds spread so that one node is the best, as in a real network
    const node = testNode(`node-${i}`, "MID", { tokensPerSecond: 10 + ((i * 7919) % 1000) / 50 });
    registry.add(node);
    if (i < busy) {
      node.tasks.set(`task-${i}`, sink);
      running.push([node, `task-${i}`]);
    }
  }
  return { registry, running };
}

/** CPU µs a request: the classifier's look for an idle node, routing's pick and its slot, another task ending. */
function measure(count: number, busyPercent: number, read: Read): number {
  const { registry, running } = network(count, busyPercent);
  let task = 0;
  const before = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    pickIdleClassifierNodes(read(registry), () => "known");
    const node = pickNode(read(registry), request);
    if (node) {
      const id = `request-${task++}`;
      node.tasks.set(id, sink);
      running.push([node, id]);
    }
    // a task ends: the oldest, so the busy share stays as it was (a full network: the one just taken)
    const ended = running.length > 0 && (node || busyPercent === 100) ? running.shift() : undefined;
    if (ended) ended[0].tasks.delete(ended[1]);
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / requests;
}

const rows: string[][] = [];
const right: ("l" | "r")[] = ["r", "r", "r", "r", "r"];
for (const count of nodeCounts) {
  for (const busy of busyShares) {
    const samples = { every: [] as number[], room: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      // in turn first, so that neither always runs on the warmer heap
      const order = round % 2 === 0 ? (["every", "room"] as const) : (["room", "every"] as const);
      for (const kind of order) samples[kind].push(measure(count, busy, kind === "every" ? everyNode : withRoom));
    }
    const every = percentile(ascending(samples.every), 50);
    const room = percentile(ascending(samples.room), 50);
    rows.push([count.toLocaleString("en-US"), `${busy} %`, fixed(every, 1), fixed(room, 1), `${fixed(every / room)}×`]);
  }
}
console.log(
  `## Choosing a node\n\n${requests} requests a round, ${ROUNDS} rounds alternating, median; one slot a node; ` +
    `Node ${process.version}\n\n` +
    markdownTable(["nodes", "busy", "every node, µs a request", "nodes with room, µs a request", "ratio"], rows, right),
);
