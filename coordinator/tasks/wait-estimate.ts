// How long a queued request will wait, roughly: the capable nodes' slots free up as their running tasks end (each
// expected to take its node's median recent service time), and the requests ahead take the first ones.
import type { LiveNode, NodeRegistry } from "../nodes/registry.ts";
import { eligible, type RouteRequest } from "./router.ts";

/** A node that has completed nothing yet is expected to take as long as this many tokens at its declared speed... */
const FALLBACK_ANSWER_TOKENS = 256;
/** ...or this long when it declared no speed either (SIMPLE's deadline). */
const FALLBACK_SERVICE_MS = 60_000;
/** A task running past its expected time is expected to end within this: the estimate never says "now". */
const OVERDUE_REMAINING_MS = 1_000;

/** One capable node as the estimate sees it. */
export interface SlotSource {
  /** How long one task takes on it. */
  serviceMs: number;
  /** How long each of its running tasks has run. */
  runningForMs: number[];
  /** Slots free now (a node that frees one is given a waiter at once; only a race leaves one here). */
  freeSlots: number;
}

/** The median of the node's recent service times; without any, FALLBACK_ANSWER_TOKENS at its declared speed. */
export function expectedServiceMs(node: LiveNode): number {
  const times = [...node.serviceTimes].sort((a, b) => a - b);
  if (times.length > 0) {
    const middle = Math.floor(times.length / 2);
    return times.length % 2 === 1 ? times[middle]! : (times[middle - 1]! + times[middle]!) / 2;
  }
  const speed = node.capabilities.tokensPerSecond;
  return Number.isFinite(speed) && speed > 0 ? (FALLBACK_ANSWER_TOKENS * 1000) / speed : FALLBACK_SERVICE_MS;
}

/** Whether `node` could take `request` once a slot frees (paused nodes free none while paused). */
function sourceFor(node: LiveNode, request: RouteRequest): boolean {
  return node.connected && !node.paused && eligible(node, request);
}

/** A node's slots as the estimate sees them at `now`. */
function slotSource(node: LiveNode, now: number): SlotSource {
  const runningForMs = [...node.tasks.values()]
    .slice(0, node.capabilities.maxConcurrentTasks)
    .map((task) => Math.max(0, now - (task.startedAt ?? now)));
  return { serviceMs: expectedServiceMs(node), runningForMs, freeSlots: Math.max(0, node.freeSlots) };
}

/** The connected nodes that could take `request` once a slot frees. */
export function slotSources(nodes: Iterable<LiveNode>, request: RouteRequest, now: number): SlotSource[] {
  const sources: SlotSource[] = [];
  for (const node of nodes) if (sourceFor(node, request)) sources.push(slotSource(node, now));
  return sources;
}

/**
 * When the request at `position` (1 = next) gets a slot: the slots' release times in order, each taken by the next
 * request in the queue and released again one service time later. undefined without any capable slot.
 */
export function estimateWaitMs(sources: readonly SlotSource[], position: number): number | undefined {
  return new ReleaseSchedule(sources).at(position);
}

/** The order in which capable slots free up for the queue, worked out as far as a position asks. */
class ReleaseSchedule {
  readonly #heap = new MinHeap();
  /** When the slot of each position frees, ms from now: [0] for position 1. */
  readonly #releases: number[] = [];

  constructor(sources: readonly SlotSource[]) {
    for (const source of sources) {
      for (const ran of source.runningForMs)
        this.#heap.push({ at: Math.max(OVERDUE_REMAINING_MS, source.serviceMs - ran), serviceMs: source.serviceMs });
      for (let i = 0; i < source.freeSlots; i++) this.#heap.push({ at: 0, serviceMs: source.serviceMs });
    }
  }

  at(position: number): number | undefined {
    if (this.#heap.size === 0 || position < 1) return undefined;
    while (this.#releases.length < position) {
      const slot = this.#heap.pop()!;
      this.#releases.push(Math.round(slot.at));
      this.#heap.push({ at: slot.at + slot.serviceMs, serviceMs: slot.serviceMs });
    }
    return this.#releases[position - 1];
  }
}

/**
 * Estimates for a whole queue at once: when a slot frees, every waiter behind it hears its new place, and each used
 * to read every node and simulate the slots up to its own position (a wave of W waiters over N nodes and S slots cost
 * O(W·(N + position·log S)): ~360 ms for 1,000 waiters on 200 nodes). Now a waiter's capable nodes are worked out once
 * and kept until a node comes, goes or changes what eligibility reads (for at most CAPABLE_FRESH_MS); within one turn
 * of the event loop (and 50 ms) each node's slots are read once and each set of capable nodes' schedule is
 * simulated once, as far as the furthest position asked; a waiter then costs a lookup.
 */
export class WaitEstimates {
  #turn: { now: number; sources: Map<LiveNode, SlotSource>; schedules: Map<string, ReleaseSchedule> } | undefined;
  /** Bumped when a node comes, goes, or changes what eligibility reads (not its tasks, speed or reputation). */
  #version = 0;
  readonly #capable = new WeakMap<RouteRequest, Capable>();

  constructor(
    private readonly registry: Pick<NodeRegistry, "nodes" | "onChange" | "onMeasured">,
    private readonly now: () => number,
  ) {
    registry.onChange((_node, field) => {
      if (ELIGIBILITY_FIELDS.has(field)) this.#version++;
    });
    registry.onMeasured(() => this.#version++); // a context window measured
  }

  /** The estimate for a waiter at `position` (1 = next), from the nodes connected now; undefined without any. */
  estimate(request: RouteRequest, position: number): number | undefined {
    const turn = this.#current();
    const capable = this.#capableFor(request, turn.now);
    let schedule = turn.schedules.get(capable.key);
    if (!schedule) {
      const sources = capable.nodes.map((node) => {
        let source = turn.sources.get(node);
        if (!source) turn.sources.set(node, (source = slotSource(node, turn.now)));
        return source;
      });
      turn.schedules.set(capable.key, (schedule = new ReleaseSchedule(sources)));
    }
    return schedule.at(position);
  }

  #capableFor(request: RouteRequest, now: number): Capable {
    const known = this.#capable.get(request);
    // a request that failed over excludes one more node (the part runner adds it to the same set)
    const fresh = known && known.version === this.#version && known.excluded === request.exclude.size;
    if (fresh && now - known.at < CAPABLE_FRESH_MS) return known;
    const nodes: LiveNode[] = [];
    let key = "";
    for (const node of this.registry.nodes()) {
      if (!sourceFor(node, request)) continue;
      nodes.push(node);
      key += `${node.id}\n`;
    }
    const capable = { version: this.#version, at: now, excluded: request.exclude.size, key, nodes };
    // a bar on reputation moves with every task's outcome: worked out again each time
    if (request.reputationAbove === undefined) this.#capable.set(request, capable);
    return capable;
  }

  #current() {
    const now = this.now();
    // a wave of thousands of waiters may take longer than a millisecond: the reading holds for the turn, within reason
    if (this.#turn && now - this.#turn.now < TURN_READING_MS) return this.#turn;
    const turn = { now, sources: new Map<LiveNode, SlotSource>(), schedules: new Map<string, ReleaseSchedule>() };
    this.#turn = turn;
    // what the nodes do in the next turn (a task started or ended) counts from then
    setImmediate(() => {
      if (this.#turn === turn) this.#turn = undefined;
    });
    return turn;
  }
}

/** The longest one reading of the nodes' slots serves the estimates of one turn of the event loop. */
const TURN_READING_MS = 50;

/** A waiter's capable nodes as last worked out. */
interface Capable {
  version: number;
  at: number;
  excluded: number;
  key: string;
  nodes: LiveNode[];
}

/** What a node's eligibility reads, besides its reputation: a change of any makes every waiter's set stale. */
const ELIGIBILITY_FIELDS: ReadonlySet<string> = new Set(["added", "removed", "paused", "suspended", "tier"]);

/** How long a waiter's capable nodes are kept with no change heard (what no event tells: a remote node's window). */
export const CAPABLE_FRESH_MS = 1_000;

interface Release {
  at: number;
  serviceMs: number;
}

/** A binary min-heap on `at`: a long queue over many slots stays O(position · log slots). */
class MinHeap {
  readonly #items: Release[] = [];

  get size(): number {
    return this.#items.length;
  }

  push(item: Release): void {
    const items = this.#items;
    items.push(item);
    for (let i = items.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (items[parent]!.at <= items[i]!.at) break;
      [items[parent], items[i]] = [items[i]!, items[parent]!];
      i = parent;
    }
  }

  pop(): Release | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || !last) return top;
    items[0] = last;
    for (let i = 0; ; ) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < items.length && items[left]!.at < items[smallest]!.at) smallest = left;
      if (right < items.length && items[right]!.at < items[smallest]!.at) smallest = right;
      if (smallest === i) break;
      [items[smallest], items[i]] = [items[i]!, items[smallest]!];
      i = smallest;
    }
    return top;
  }
}
