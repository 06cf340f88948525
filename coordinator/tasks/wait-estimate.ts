// How long a queued request will wait, roughly: the capable nodes' slots free up as their running tasks end (each
// expected to take its node's median recent service time), and the requests ahead take the first ones.
import type { LiveNode } from "../nodes/registry.ts";
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

/** The connected nodes that could take `request` once a slot frees (paused nodes free none while paused). */
export function slotSources(nodes: Iterable<LiveNode>, request: RouteRequest, now: number): SlotSource[] {
  const sources: SlotSource[] = [];
  for (const node of nodes) {
    if (!node.connected || node.paused || !eligible(node, request)) continue;
    const runningForMs = [...node.tasks.values()]
      .slice(0, node.capabilities.maxConcurrentTasks)
      .map((task) => Math.max(0, now - (task.startedAt ?? now)));
    sources.push({ serviceMs: expectedServiceMs(node), runningForMs, freeSlots: Math.max(0, node.freeSlots) });
  }
  return sources;
}

/**
 * When the request at `position` (1 = next) gets a slot: the slots' release times in order, each taken by the next
 * request in the queue and released again one service time later. undefined without any capable slot.
 */
export function estimateWaitMs(sources: readonly SlotSource[], position: number): number | undefined {
  const heap = new MinHeap();
  for (const source of sources) {
    for (const ran of source.runningForMs)
      heap.push({ at: Math.max(OVERDUE_REMAINING_MS, source.serviceMs - ran), serviceMs: source.serviceMs });
    for (let i = 0; i < source.freeSlots; i++) heap.push({ at: 0, serviceMs: source.serviceMs });
  }
  if (heap.size === 0 || position < 1) return undefined;
  for (let ahead = 1; ; ahead++) {
    const slot = heap.pop()!;
    if (ahead >= position) return Math.round(slot.at);
    heap.push({ at: slot.at + slot.serviceMs, serviceMs: slot.serviceMs });
  }
}

/** The estimate for a waiter at `position`, from the nodes connected now. */
export function estimateQueueWaitMs(
  nodes: Iterable<LiveNode>,
  request: RouteRequest,
  position: number,
  now = Date.now(),
): number | undefined {
  return estimateWaitMs(slotSources(nodes, request, now), position);
}

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
