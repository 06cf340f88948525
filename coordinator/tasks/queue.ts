// The bounded queue of requests waiting for a capable node, in arrival order, with positions. In a cluster the
// queue is every coordinator's together (QueuePeers): a free node goes to the earliest waiter that can take it,
// wherever it waits, and a position counts the requests waiting ahead on every coordinator.
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Difficulty } from "../../common/vocabulary.ts";
import type { LiveNode } from "../nodes/registry.ts";
import { pickNode, type RouteRequest } from "./router.ts";

export interface Waiter {
  request: RouteRequest;
  /** Takes the node: must reserve the slot synchronously, before any other waiter is considered. */
  claim(node: LiveNode): void;
  /** Told whenever its position changes (1 = next), and again every `updateMs` while it waits. */
  position(position: number): void;
}

/** A waiter as the other coordinators see it. */
export interface QueuedWaiter {
  id: string;
  /** When it began to wait (ms since the epoch). */
  since: number;
  request: RouteRequest;
}

/** The requests waiting on the other coordinators of the cluster (coordinator/cluster/queue-view.ts). */
export interface QueuePeers {
  /** How many wait elsewhere since before `since`: they are ahead of a waiter here. */
  countBefore(since: number): number;
  /** How many of those could take `node`: each takes one of its free slots first. */
  aheadFor(node: LiveNode, since: number): number;
  /** A request began to wait here (or waits again, `since` its earlier start): the peers hear it. */
  added(waiter: QueuedWaiter): void;
  /** A request here no longer waits (it took a node, gave up or failed). */
  removed(id: string): void;
  /** `listener` hears whenever the peers' queues change. */
  onChange(listener: () => void): void;
}

export class WaitQueue {
  readonly #waiters: Waiter[] = [];
  readonly #queued = new Map<Waiter, QueuedWaiter>();
  /** The place each waiter was last told. */
  readonly #told = new Map<Waiter, number>();
  #updates: NodeJS.Timeout | undefined;

  constructor(
    private readonly maxLength: number,
    /**
     * The nodes with a free slot whose tier serves a difficulty (the registry's nodesWithRoom, this coordinator's and
     * its peers').
     */
    private readonly nodes: (difficulty: Difficulty) => Iterable<LiveNode>,
    /**
     * A waiting client hears its position (and the estimate that goes with it) at least this often; 0: only on changes.
     */
    private readonly updateMs = 0,
    private readonly peers?: QueuePeers,
    private readonly now: () => number = Date.now,
  ) {
    // a request elsewhere left or arrived: positions move, and a node it was ahead for may be free for one here
    peers?.onChange(() => {
      this.drain();
      this.#announceFrom(0);
    });
  }

  get length(): number {
    return this.#waiters.length;
  }

  /**
   * Adds a waiter in arrival order: at the end, or — waiting again `since` an earlier time — back at its place.
   * Refuses with ResourceExhausted when the queue is full.
   */
  enqueue(waiter: Waiter, since = this.now()): void {
    if (this.#waiters.length >= this.maxLength) {
      throw new ConnectError(
        `all capable nodes are busy and the queue is full (${this.maxLength} requests waiting); try again shortly`,
        Code.ResourceExhausted,
      );
    }
    let index = this.#waiters.length;
    while (index > 0 && this.#queued.get(this.#waiters[index - 1]!)!.since > since) index--;
    this.#waiters.splice(index, 0, waiter);
    const queued = { id: randomUUID(), since, request: waiter.request };
    this.#queued.set(waiter, queued);
    this.#announceFrom(index);
    this.#scheduleUpdates();
    this.peers?.added(queued);
  }

  remove(waiter: Waiter): void {
    const index = this.#waiters.indexOf(waiter);
    if (index < 0) return;
    this.#waiters.splice(index, 1);
    this.#left(waiter);
    this.#announceFrom(index);
    this.#scheduleUpdates();
  }

  /**
   * Whether a request arriving now may take a node's free slot at once: requests waiting elsewhere since before come
   * first. Undefined when every free slot may go (no peers).
   */
  opener(): ((node: LiveNode) => boolean) | undefined {
    const peers = this.peers;
    if (!peers) return undefined;
    const now = this.now();
    return (node) => node.freeSlots > peers.aheadFor(node, now);
  }

  /**
   * Gives free capacity to waiters in arrival order (a later waiter may go first if the earlier one can't use it).
   * Each waiter is offered the nodes with a free slot of the tiers that serve it: requests waiting for a large node
   * do not read the thousands of idle small ones on every task's end, and on busy nodes a long queue reads a few.
   */
  drain(): void {
    // every task's end calls this (the registry's capacity signal): with nobody waiting there is nothing to hand out,
    // and gathering the free nodes first read every idle node of the network (10,000: ~0.36 ms a task's end)
    if (this.#waiters.length === 0) return;
    let firstRemoved = -1;
    const peers = this.peers;
    // each difficulty's free nodes read once a drain (a node that fills up leaves them all)
    const free = new Map<Difficulty, LiveNode[]>();
    for (let i = 0; i < this.#waiters.length; ) {
      const waiter = this.#waiters[i]!;
      const { difficulty } = waiter.request;
      let offered = free.get(difficulty);
      if (!offered) free.set(difficulty, (offered = [...this.nodes(difficulty)]));
      const since = this.#queued.get(waiter)!.since;
      // a node's free slots go first to the requests that wait elsewhere since before this one
      const node =
        offered.length > 0 ? pickNode(peers ? owedHere(offered, peers, since) : offered, waiter.request) : undefined;
      if (!node) {
        i++;
        continue;
      }
      this.#waiters.splice(i, 1);
      this.#left(waiter);
      if (firstRemoved < 0) firstRemoved = i;
      waiter.claim(node);
      if (node.freeSlots <= 0)
        for (const nodes of free.values()) {
          const at = nodes.indexOf(node);
          if (at >= 0) nodes.splice(at, 1);
        }
    }
    if (firstRemoved >= 0) this.#announceFrom(firstRemoved);
    this.#scheduleUpdates();
  }

  #left(waiter: Waiter): void {
    const queued = this.#queued.get(waiter);
    this.#queued.delete(waiter);
    this.#told.delete(waiter);
    if (queued) this.peers?.removed(queued.id);
  }

  /** One timer for the whole queue, running only while someone waits. */
  #scheduleUpdates(): void {
    if (this.#waiters.length === 0 || this.updateMs <= 0) {
      clearInterval(this.#updates);
      this.#updates = undefined;
    } else {
      this.#updates ??= setInterval(() => this.#announceFrom(0, true), this.updateMs).unref();
    }
  }

  /**
   * Tells the waiters from `index` on their places: those whose place moved, or `again` (the periodic update) all. A
   * request that joins another coordinator's queue behind them moves none of them, and is not worth a message each.
   */
  #announceFrom(index: number, again = false): void {
    for (let i = index; i < this.#waiters.length; i++) this.#announce(this.#waiters[i]!, i, again);
  }

  /** Its place here, behind the requests that wait elsewhere since before it. */
  #announce(waiter: Waiter, index: number, again: boolean): void {
    const queued = this.#queued.get(waiter);
    const position = index + 1 + (this.peers?.countBefore(queued?.since ?? this.now()) ?? 0);
    if (!again && this.#told.get(waiter) === position) return;
    this.#told.set(waiter, position);
    waiter.position(position);
  }
}

/** The nodes of `free` with a slot left once the peers' earlier waiters that could take them had theirs. */
function* owedHere(free: readonly LiveNode[], peers: QueuePeers, since: number): Generator<LiveNode> {
  for (const node of free) if (node.freeSlots > peers.aheadFor(node, since)) yield node;
}
