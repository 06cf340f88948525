// What choosing a node costs a request as the network grows: N connected nodes (one slot each), a share of them busy,
// and each request doing what a chat does before its assign: the classifier's node link looks for an idle node, routing
// picks the best free node and takes its slot; then another task ends (its slot freed and the registry's capacity
// signal sent, which the wait queue hears), so the share stays busy. "every node": both
// read every node, as before the registry's indexes (pickNode over registry.nodes(), and the classifier's old pass,
// kept here as the peer); "indexes": routeNow and pickIdleClassifierNodes over the registry's idle nodes by tier and
// its nodes with a free slot, as the coordinator does now. Alternating, in this process; CPU µs a request, the median
// of the rounds. Then the check each request makes before routing (is any node online that could take it?) in a
// network of small nodes and a few large ones, over every node and over the serving tiers' nodes; and a request naming
// a model that few nodes serve (its three reads: is it served, could a node take it, which one), over every node and
// over the registry's nodes by model; a spot check's choice of its checker and its part's routing to it; and a task's
// end while requests wait for a large node among many idle small ones (the wait queue's drain).
// `npm run bench:routing` (ROUTING_NODES=1000,10000; ROUTING_BUSY=0,50,90,99,100; ROUTING_REQUESTS=2000).
import { NodeRegistry, type LiveNode } from "../coordinator/nodes/registry.ts";
import type { TaskSink } from "../coordinator/nodes/task-sink.ts";
import { requireCapableNode } from "../coordinator/tasks/capable-nodes.ts";
import { pickIdleClassifierNodes } from "../coordinator/tasks/classify/node.ts";
import { NodeAcquirer } from "../coordinator/tasks/node-acquirer.ts";
import { WaitQueue } from "../coordinator/tasks/queue.ts";
import { chooseChecker } from "../coordinator/tasks/checkers.ts";
import { modelIdentity, pickNode, routeNow, servesModel, type RouteRequest } from "../coordinator/tasks/router.ts";
import { testNode } from "../test/support/live-nodes.ts";
import { ascending, fixed, markdownTable, percentile } from "./stats.ts";

const list = (value: string) => value.split(",").map(Number);
const nodeCounts = list(process.env.ROUTING_NODES ?? "1000,10000");
const busyShares = list(process.env.ROUTING_BUSY ?? "0,50,90,99,100");
const requests = Number(process.env.ROUTING_REQUESTS ?? 2000);
const ROUNDS = 5;
const sink: TaskSink = { chunk() {}, result() {}, error() {}, lost() {} };
const request: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude: new Set() };

/** One request's reading: the classifier's look for an idle node, then routing's pick. */
type Choose = (registry: NodeRegistry) => LiveNode | undefined;

const everyNode: Choose = (registry) => {
  // the classifier's pass before the indexes (pickIdleClassifierNodes over every node): idle, highest tier, fastest
  let asked: LiveNode | undefined;
  for (const node of registry.nodes()) {
    if (!node.connected || node.paused || node.tasks.size > 0) continue;
    if (!asked || node.capabilities.tokensPerSecond > asked.capabilities.tokensPerSecond) asked = node;
  }
  return pickNode(registry.nodes(), request);
};
const indexes: Choose = (registry) => {
  pickIdleClassifierNodes(
    (tier) => registry.idleNodes(tier),
    () => "known",
  );
  return routeNow(registry, request);
};

/**
 * A registry of `count` nodes, `busyPercent` of them running a task, and the running tasks in the order they end; with
 * the node acquirer a coordinator has, whose wait queue hears every task's end (the registry's capacity signal).
 */
function network(count: number, busyPercent: number) {
  const registry = new NodeRegistry();
  new NodeAcquirer({ registry, queue: { maxLength: 100, maxWaitMs: 60_000 }, now: Date.now });
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
function measure(count: number, busyPercent: number, choose: Choose): number {
  const { registry, running } = network(count, busyPercent);
  let task = 0;
  const before = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    const node = choose(registry);
    if (node) {
      const id = `request-${task++}`;
      node.tasks.set(id, sink);
      running.push([node, id]);
    }
    // a task ends: the oldest, so the busy share stays as it was (a full network: the one just taken)
    const ended = running.length > 0 && (node || busyPercent === 100) ? running.shift() : undefined;
    // as an attempt ends: its slot freed, then the capacity signal (the wait queue's drain)
    if (ended) {
      ended[0].tasks.delete(ended[1]);
      registry.notifyCapacity();
    }
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / requests;
}

const rows: string[][] = [];
const right: ("l" | "r")[] = ["r", "r", "r", "r", "r"];
for (const count of nodeCounts) {
  for (const busy of busyShares) {
    const samples = { every: [] as number[], indexes: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      // in turn first, so that neither always runs on the warmer heap
      const order = round % 2 === 0 ? (["every", "indexes"] as const) : (["indexes", "every"] as const);
      for (const kind of order) samples[kind].push(measure(count, busy, kind === "every" ? everyNode : indexes));
    }
    const every = percentile(ascending(samples.every), 50);
    const indexed = percentile(ascending(samples.indexes), 50);
    rows.push([
      count.toLocaleString("en-US"),
      `${busy} %`,
      fixed(every, 1),
      fixed(indexed, 1),
      `${fixed(every / indexed)}×`,
    ]);
  }
}
console.log(
  `## Choosing a node\n\n${requests} requests a round, ${ROUNDS} rounds alternating, median; one slot a node; ` +
    `Node ${process.version}\n\n` +
    markdownTable(["nodes", "busy", "every node, µs a request", "indexes, µs a request", "ratio"], rows, right),
);

/**
 * CPU µs of the check every request makes before it routes (is any node online that could take it?), twice a request
 * in the orchestrator: an ADVANCED request in a network of `count` nodes of which 10 are PRO (the rest BASIC, added
 * first), over every node in the registry's order (`every`) or over the nodes of the tiers that serve it.
 */
function measureCheck(count: number, every: boolean): number {
  const registry = new NodeRegistry();
  for (let i = 0; i < count; i++) registry.add(testNode(`node-${i}`, i >= count - 10 ? "PRO" : "BASIC"));
  const source = every ? { nodes: () => registry.nodes(), nodesServing: () => registry.nodes() } : registry;
  const advanced: RouteRequest = { difficulty: "ADVANCED", model: undefined, exclude: new Set() };
  const before = process.cpuUsage();
  for (let i = 0; i < requests; i++) requireCapableNode(source, advanced);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / requests;
}

/**
 * A table's rows: for each network size, `measure` over every node and over the indexes, alternating which goes first
 * round by round, the median of each and their ratio.
 */
function everyAgainstIndexes(measure: (count: number, every: boolean) => number): string[][] {
  return nodeCounts.map((count) => {
    const samples = { every: [] as number[], indexed: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? [true, false] : [false, true];
      for (const every of order) samples[every ? "every" : "indexed"].push(measure(count, every));
    }
    const every = percentile(ascending(samples.every), 50);
    const indexed = percentile(ascending(samples.indexed), 50);
    return [count.toLocaleString("en-US"), fixed(every, 1), fixed(indexed, 1), `${fixed(every / indexed)}×`];
  });
}

console.log(
  `\n## Whether any node could take the request\n\nAn ADVANCED request, 10 PRO nodes among BASIC ones; ` +
    `${requests} checks a round, ${ROUNDS} rounds alternating, median\n\n` +
    markdownTable(
      ["nodes", "every node, µs a check", "the serving tiers' nodes, µs a check", "ratio"],
      everyAgainstIndexes(measureCheck),
      ["r", "r", "r", "r"],
    ),
);

const RARE_MODEL = "Qwen2-7B-Instruct";

/** `count` idle MID nodes: the last 10 serve RARE_MODEL, the rest another model. */
function rareModelNetwork(count: number): NodeRegistry {
  const registry = new NodeRegistry();
  for (let i = 0; i < count; i++)
    registry.add(testNode(`node-${i}`, "MID", { modelName: i >= count - 10 ? RARE_MODEL : "Llama-3-8B" }));
  return registry;
}

/**
 * CPU µs of what a request naming a model does before its assign, in a network of `count` idle nodes of which 10 serve
 * the model it names (the rest another, added first): whether any node serves it, whether one could take it, and which
 * one. `every`: as before the registry kept its nodes by model (reading nodes in order until one serves the model, for
 * each of the three); else the registry's nodes by model.
 */
function measureModel(count: number, every: boolean): number {
  const registry = rareModelNetwork(count);
  const request: RouteRequest = { difficulty: "SIMPLE", model: "qwen2", exclude: new Set() };
  const source = every
    ? {
        nodes: () => registry.nodes(),
        nodesServing: (difficulty: RouteRequest["difficulty"]) => registry.nodesServing(difficulty),
      }
    : registry;
  const routing = every
    ? {
        get: registry.get.bind(registry),
        idleNodes: registry.idleNodes.bind(registry),
        nodesWithRoom: registry.nodesWithRoom.bind(registry),
        modelNodeCount: () => Number.POSITIVE_INFINITY,
        nodesOfModel: () => [],
      }
    : registry;
  const served = every
    ? (model: string) => {
        for (const node of registry.nodes()) if (servesModel(node, model)) return true;
        return false;
      }
    : (model: string) => registry.servesModel(model);
  const before = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    if (!served(request.model!)) throw new Error("the model is served");
    requireCapableNode(source, request);
    if (!routeNow(routing, request)) throw new Error("a node is idle");
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / requests;
}

console.log(
  `\n## A request naming a model few nodes serve\n\n10 idle nodes of the model named among idle nodes of another; ` +
    `whether it is served, whether a node could take it, which one; ${requests} requests a round, ${ROUNDS} rounds ` +
    `alternating, median\n\n` +
    markdownTable(
      ["nodes", "every node, µs a request", "nodes by model, µs a request", "ratio"],
      everyAgainstIndexes(measureModel),
      ["r", "r", "r", "r"],
    ),
);

/**
 * CPU µs of a spot check's start in a network of `count` idle nodes of which 10 serve the checked answer's model (the
 * rest another): choosing its checker among the nodes of that model, then routing its part to that node alone.
 * `every`: as before (the checker chosen among every node, the part's route excluding every other node by id).
 */
function measureSpotCheck(count: number, every: boolean): number {
  const registry = rareModelNetwork(count);
  const answered = registry.get(`node-${count - 1}`)!;
  const checked = { model: modelIdentity(answered), difficulty: "SIMPLE" as const, avoid: [answered] };
  let seed = 1;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const before = process.cpuUsage();
  for (let i = 0; i < requests; i++) {
    const checker = chooseChecker(checked, every ? registry.nodes() : registry.nodesNamed(RARE_MODEL), random);
    const exclude = every
      ? new Set([...registry.nodes()].filter((node) => node !== checker).map((node) => node.id))
      : new Set<string>();
    const route: RouteRequest = { difficulty: "SIMPLE", model: undefined, exclude, sameModel: checked.model };
    if (routeNow(registry, every ? route : { ...route, only: checker!.id }) !== checker) throw new Error("the checker");
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / requests;
}

console.log(
  `\n## A spot check's checker\n\n10 idle nodes of the checked answer's model among idle nodes of another; its ` +
    `checker chosen, its part routed to it; ${requests} checks a round, ${ROUNDS} rounds alternating, median\n\n` +
    markdownTable(
      ["nodes", "every node, µs a check", "the model's nodes and the checker looked up, µs a check", "ratio"],
      everyAgainstIndexes(measureSpotCheck),
      ["r", "r", "r", "r"],
    ),
);

/**
 * CPU µs of a task's end (its slot freed, the queue drained) in a network of `count` idle BASIC nodes and 10 busy PRO
 * ones while 50 ADVANCED requests wait for a PRO node: the queue offers each waiter the free nodes of every tier
 * (`every`, as before) or of the tiers that serve it.
 */
/** Task ends a round: reading every free node for each waiter takes ~5 ms an end at 1,000 nodes. */
const DRAIN_ENDS = Math.max(10, Math.round(requests / 20));

function measureDrain(count: number, every: boolean): number {
  const registry = new NodeRegistry();
  for (let i = 0; i < count; i++) registry.add(testNode(`node-${i}`, "BASIC"));
  for (let i = 0; i < 10; i++) {
    const pro = testNode(`pro-${i}`, "PRO");
    pro.tasks.set(`pro-task-${i}`, sink);
    registry.add(pro);
  }
  const queue = new WaitQueue(100, (difficulty) => registry.nodesWithRoom(every ? undefined : difficulty));
  const advanced: RouteRequest = { difficulty: "ADVANCED", model: undefined, exclude: new Set() };
  for (let i = 0; i < 50; i++) queue.enqueue({ request: advanced, claim() {}, position() {} });
  const small = registry.get("node-0")!;
  const ends = DRAIN_ENDS;
  const before = process.cpuUsage();
  for (let i = 0; i < ends; i++) {
    small.tasks.set("task", sink);
    small.tasks.delete("task");
    queue.drain();
  }
  const used = process.cpuUsage(before);
  return (used.user + used.system) / ends;
}

console.log(
  `\n## A task's end while requests wait for a large node\n\nIdle BASIC nodes, 10 busy PRO ones, 50 ADVANCED ` +
    `requests waiting; ${DRAIN_ENDS} task ends a round, ${ROUNDS} rounds alternating, median\n\n` +
    markdownTable(
      ["nodes", "every free node, µs a task's end", "the serving tiers' free nodes, µs a task's end", "ratio"],
      everyAgainstIndexes(measureDrain),
      ["r", "r", "r", "r"],
    ),
);
