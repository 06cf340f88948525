// The cluster's queue: every coordinator tells the others which requests wait on it and keeps theirs, so that a free
// node goes to the earliest waiter that can take it, wherever it waits, and a position counts every request ahead
// (coordinator/tasks/queue.ts). What changed in a turn of the event loop goes out as one ClusterQueueChange; the
// whole queue (ClusterQueue, in parts when long) when a peer joins or asks. Messages are numbered: a peer applies a
// change only to the message before it; after a gap it asks the home for its whole queue (ClusterQueueWanted) and
// keeps what it heard until that comes. A beat every CLUSTER_VIEW_MS carries the number of the home's latest message,
// so that a peer that missed the last one finds out; every FULL_EVERY_BEATS beats, while any wait or after a change,
// the whole queue goes out anyway (a peer of an earlier version never asks). A change costs its own size, not the
// queue's, the cluster's queue costs nothing a second while nothing is lost, and a peer counts the requests ahead of
// one of its own by a binary search (bench/cluster-queue.ts).
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import {
  ClusterQueueBeatSchema,
  ClusterQueueChangeSchema,
  ClusterQueueSchema,
  ClusterQueueWantedSchema,
  ClusterRouteSchema,
  type ClusterRoute,
  type ClusterWaiter,
  ClusterWaiterSchema,
} from "../../gen/iris/v1/cluster_pb.ts";
import type { LiveNode } from "../nodes/registry.ts";
import type { QueuedWaiter, QueuePeers } from "../tasks/queue.ts";
import { eligible, type RouteRequest } from "../tasks/router.ts";
import type { Bus, ClusterSubjects } from "./bus.ts";
import { FULL_EVERY_BEATS } from "./node-view.ts";
import { difficultyFromProto, difficultyToProto } from "../../common/vocabulary.ts";

export interface QueueViewContext {
  bus: Bus;
  subjects: ClusterSubjects;
  instance: string;
  logger: Logger;
  viewMs: number;
  /** Whether any other coordinator is known: with none, nothing is published (a single coordinator pays nothing). */
  hasPeers?: () => boolean;
  /** Tests: the most waiters in one message of a whole queue (QUEUE_PART_WAITERS). */
  partWaiters?: number;
}

/**
 * A whole queue of more waiters goes in parts (ClusterQueue.part): a waiter takes ~60 bytes (more with excluded nodes
 * or an exact model), so a part stays far below NATS's max_payload (1 MB by default), and a peer decodes one part at a
 * time.
 */
export const QUEUE_PART_WAITERS = 2_000;

/** A peer's queue as heard: its waiters, the number of the last message applied, and whether none was missed since. */
interface PeerQueue {
  sequence: number;
  inStep: boolean;
  waiters: Map<string, QueuedWaiter>;
}

/** Why a peer asks a home for its whole queue: nothing heard from it yet, or a message missed. */
type WantReason = "first" | "gap";

/** A whole queue arriving in parts: the waiters so far and the part and message number expected next. */
interface Collecting {
  part: number;
  parts: number;
  sequence: number;
  waiters: QueuedWaiter[];
}

export class QueueView implements QueuePeers {
  /** The other coordinators' queues, by coordinator (kept when empty: its next change applies to it). */
  readonly #queues = new Map<string, PeerQueue>();
  readonly #collecting = new Map<string, Collecting>();
  /** Every peer waiter's start, ascending (built when asked after a change). */
  #sinces: Float64Array | undefined;
  /** Within one turn: for a node, the starts of the peer waiters that could take it, ascending. */
  readonly #eligibleSinces = new Map<LiveNode, Float64Array>();
  readonly #listeners = new Set<() => void>();
  /** This coordinator's waiters, and what changed since the last message. */
  readonly #own = new Map<string, QueuedWaiter>();
  readonly #added = new Map<string, QueuedWaiter>();
  readonly #removed = new Set<string>();
  #sequence = 0;
  /** When this coordinator last asked each home for its whole queue: at most once a CLUSTER_VIEW_MS. */
  readonly #askedAt = new Map<string, number>();
  #beats = 0;
  #wholeWanted = false;
  #changedSinceWhole = false;
  #scheduled = false;
  readonly #timer: NodeJS.Timeout;
  readonly #unsubscribe: (() => void)[];

  constructor(private readonly ctx: QueueViewContext) {
    const handle = (what: string, receive: (data: Uint8Array) => void) => (data: Uint8Array) => {
      try {
        receive(data);
      } catch (err) {
        ctx.logger.error({ err }, `cluster bus: could not apply a ${what}`);
      }
    };
    this.#unsubscribe = [
      ctx.bus.subscribe(
        ctx.subjects.queue,
        handle("queue", (data) => this.#receiveWhole(data)),
      ),
      ctx.bus.subscribe(
        ctx.subjects.queueChanges,
        handle("queue change", (data) => this.#receiveChange(data)),
      ),
      ctx.bus.subscribe(
        ctx.subjects.queueBeats,
        handle("queue beat", (data) => this.#receiveBeat(data)),
      ),
      ctx.bus.subscribe(
        ctx.subjects.queueWant(ctx.instance),
        handle("queue ask", (data) => this.#wanted(data)),
      ),
    ];
    this.#timer = setInterval(() => this.#beat(), ctx.viewMs);
    this.#timer.unref();
  }

  /** Whether any other coordinator has requests waiting. */
  get othersWaiting(): boolean {
    for (const queue of this.#queues.values()) if (queue.waiters.size > 0) return true;
    return false;
  }

  countBefore(since: number): number {
    if (this.#queues.size === 0) return 0;
    this.#sinces ??= ascendingSinces(this.#peerWaiters());
    return countBelow(this.#sinces, since);
  }

  aheadFor(node: LiveNode, since: number): number {
    if (this.#queues.size === 0 || node.freeSlots <= 0) return 0;
    let sinces = this.#eligibleSinces.get(node);
    if (!sinces) {
      // a drain asks this for each of its waiters in turn: the node's eligible waiters once a turn, then a search
      if (this.#eligibleSinces.size === 0) queueMicrotask(() => this.#eligibleSinces.clear());
      sinces = ascendingSinces(this.#peerWaiters((waiter) => eligible(node, waiter.request)));
      this.#eligibleSinces.set(node, sinces);
    }
    return countBelow(sinces, since);
  }

  added(waiter: QueuedWaiter): void {
    this.#own.set(waiter.id, waiter);
    this.#added.set(waiter.id, waiter);
    this.#schedule();
  }

  removed(id: string): void {
    if (!this.#own.delete(id)) return;
    // one that came and went within the turn was never told
    if (!this.#added.delete(id)) this.#removed.add(id);
    this.#schedule();
  }

  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  /** A coordinator left (or fell silent): its waiters no longer come first. */
  drop(home: string): void {
    this.#collecting.delete(home);
    this.#askedAt.delete(home);
    if (this.#queues.delete(home)) this.#changed();
  }

  /** A coordinator joined: it hears our whole queue at the end of this turn. */
  joined(): void {
    this.#wholeWanted = true;
    this.#schedule();
  }

  stop(): void {
    clearInterval(this.#timer);
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    // peers stop counting our waiters at once
    this.#own.clear();
    this.#sendWhole(true);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // the changes of one turn of the event loop in one message
    setImmediate(() => {
      this.#scheduled = false;
      if (this.#wholeWanted) this.#sendWhole();
      else this.#sendChange();
    });
  }

  /**
   * Every CLUSTER_VIEW_MS: the number of the latest message, so that a peer that missed it asks; every
   * FULL_EVERY_BEATS, while any wait here or after a change, the whole queue instead (it mends a peer that never asks).
   */
  #beat(): void {
    this.#beats = (this.#beats + 1) % FULL_EVERY_BEATS;
    if (this.#beats === 0 && (this.#own.size > 0 || this.#changedSinceWhole)) {
      this.#sendWhole();
      return;
    }
    if (this.ctx.hasPeers?.() === false) return;
    const beat = create(ClusterQueueBeatSchema, { home: this.ctx.instance, sequence: BigInt(this.#sequence) });
    this.ctx.bus.publish(this.ctx.subjects.queueBeats, toBinary(ClusterQueueBeatSchema, beat));
  }

  #wanted(data: Uint8Array): void {
    const want = fromBinary(ClusterQueueWantedSchema, data);
    // answered even when a whole queue went out since the asker's last message: that one may be what it lost (the
    // asks of one turn get one whole queue, and a peer asks a home at most once a CLUSTER_VIEW_MS)
    const { origin, reason, sequence } = want;
    this.ctx.logger.debug({ peer: origin, reason, sequence }, "cluster: a peer asks for our whole queue");
    this.joined();
  }

  #sendChange(): void {
    if (this.#added.size === 0 && this.#removed.size === 0) return;
    // numbered even when nobody is known to hear it: a peer that still holds our queue sees the gap
    const sequence = ++this.#sequence;
    this.#changedSinceWhole = true;
    if (this.ctx.hasPeers?.() === false) {
      // a peer that joins hears the whole queue
      this.#added.clear();
      this.#removed.clear();
      return;
    }
    const change = create(ClusterQueueChangeSchema, {
      home: this.ctx.instance,
      sequence: BigInt(sequence),
      added: [...this.#added.values()].map(waiterOf),
      removed: [...this.#removed],
    });
    this.#added.clear();
    this.#removed.clear();
    this.ctx.bus.publish(this.ctx.subjects.queueChanges, toBinary(ClusterQueueChangeSchema, change));
  }

  /** The whole queue, oldest first, in parts when long; `always`: even with no peer known (our leaving). */
  #sendWhole(always = false): void {
    this.#wholeWanted = false;
    this.#added.clear();
    this.#removed.clear();
    this.#changedSinceWhole = false;
    if (!always && this.ctx.hasPeers?.() === false) return;
    const waiters = [...this.#own.values()].sort((a, b) => a.since - b.since).map(waiterOf);
    const size = this.ctx.partWaiters ?? QUEUE_PART_WAITERS;
    const parts = waiters.length > size ? Math.ceil(waiters.length / size) : 0;
    for (let part = 1; part <= Math.max(1, parts); part++) {
      const queue = create(ClusterQueueSchema, {
        home: this.ctx.instance,
        waiters: parts === 0 ? waiters : waiters.slice((part - 1) * size, part * size),
        sequence: BigInt(++this.#sequence),
        ...(parts === 0 ? {} : { part, parts }),
      });
      this.ctx.bus.publish(this.ctx.subjects.queue, toBinary(ClusterQueueSchema, queue));
    }
  }

  #receiveWhole(data: Uint8Array): void {
    const queue = fromBinary(ClusterQueueSchema, data);
    if (queue.home === this.ctx.instance) return;
    const sequence = Number(queue.sequence);
    const waiters = queue.waiters.flatMap(queuedOf);
    if (queue.parts === 0) {
      this.#collecting.delete(queue.home);
      this.#install(queue.home, sequence, waiters);
      return;
    }
    let collecting = this.#collecting.get(queue.home);
    if (queue.part === 1) {
      collecting = { part: 1, parts: queue.parts, sequence, waiters: [] };
      this.#collecting.set(queue.home, collecting);
    } else if (
      !collecting ||
      queue.part !== collecting.part + 1 ||
      queue.parts !== collecting.parts ||
      sequence !== collecting.sequence + 1
    ) {
      // a part was lost: the queue as heard stays until the next whole one
      this.#collecting.delete(queue.home);
      return;
    }
    collecting.part = queue.part;
    collecting.sequence = sequence;
    for (const waiter of waiters) collecting.waiters.push(waiter);
    if (queue.part < queue.parts) return;
    this.#collecting.delete(queue.home);
    this.#install(queue.home, sequence, collecting.waiters);
  }

  #install(home: string, sequence: number, waiters: QueuedWaiter[]): void {
    const before = this.#queues.get(home);
    this.#askedAt.delete(home);
    // a sender that numbers nothing (an older version) sends only whole queues: no change can follow it
    this.#queues.set(home, {
      sequence,
      inStep: sequence !== 0,
      waiters: new Map(waiters.map((waiter) => [waiter.id, waiter])),
    });
    if (waiters.length > 0 || (before?.waiters.size ?? 0) > 0) this.#changed();
  }

  #receiveChange(data: Uint8Array): void {
    const change = fromBinary(ClusterQueueChangeSchema, data);
    if (change.home === this.ctx.instance) return;
    const queue = this.#queues.get(change.home);
    const sequence = Number(change.sequence);
    if (!queue) {
      this.#ask(change.home, undefined, "first");
      return;
    }
    if (!queue.inStep || sequence !== queue.sequence + 1) {
      // a message was missed: what is heard stays, unchanged, until the whole queue asked for comes
      queue.inStep = false;
      this.#ask(change.home, queue, "gap");
      return;
    }
    queue.sequence = sequence;
    for (const id of change.removed) queue.waiters.delete(id);
    for (const waiter of change.added.flatMap(queuedOf)) queue.waiters.set(waiter.id, waiter);
    this.#changed();
  }

  #receiveBeat(data: Uint8Array): void {
    const beat = fromBinary(ClusterQueueBeatSchema, data);
    if (beat.home === this.ctx.instance || this.#collecting.has(beat.home)) return;
    const queue = this.#queues.get(beat.home);
    if (!queue) this.#ask(beat.home, undefined, "first");
    else if (!queue.inStep || Number(beat.sequence) !== queue.sequence) {
      // its latest message (or the whole queue asked for) did not arrive
      queue.inStep = false;
      this.#ask(beat.home, queue, "gap");
    }
  }

  /** Asks `home` for its whole queue, at most once a CLUSTER_VIEW_MS (the answer may be on its way). */
  #ask(home: string, queue: PeerQueue | undefined, reason: WantReason): void {
    const now = Date.now();
    const asked = this.#askedAt.get(home);
    if (asked !== undefined && now - asked < this.ctx.viewMs) return;
    this.#askedAt.set(home, now);
    const sequence = BigInt(queue?.sequence ?? 0);
    const want = create(ClusterQueueWantedSchema, { origin: this.ctx.instance, sequence, reason });
    this.ctx.bus.publish(this.ctx.subjects.queueWant(home), toBinary(ClusterQueueWantedSchema, want));
  }

  #peerWaiters(take?: (waiter: QueuedWaiter) => boolean): number[] {
    const sinces: number[] = [];
    for (const queue of this.#queues.values())
      for (const waiter of queue.waiters.values()) if (!take || take(waiter)) sinces.push(waiter.since);
    return sinces;
  }

  #changed(): void {
    this.#sinces = undefined;
    this.#eligibleSinces.clear();
    for (const listener of this.#listeners) listener();
  }
}

function ascendingSinces(sinces: number[]): Float64Array {
  return Float64Array.from(sinces).sort();
}

/** How many of `sorted` are below `value`. */
function countBelow(sorted: Float64Array, value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function waiterOf(waiter: QueuedWaiter): ClusterWaiter {
  return create(ClusterWaiterSchema, {
    id: waiter.id,
    enqueuedAtUnixMs: BigInt(Math.round(waiter.since)),
    route: routeOf(waiter.request),
  });
}

/** A peer's waiter as this coordinator counts it; none for one this code cannot read (a newer difficulty). */
function queuedOf(waiter: ClusterWaiter): QueuedWaiter[] {
  const request = waiter.route && requestOf(waiter.route);
  return request ? [{ id: waiter.id, since: Number(waiter.enqueuedAtUnixMs), request }] : [];
}

export function routeOf(request: RouteRequest): ClusterRoute {
  const { context: c, sameModel } = request;
  return create(ClusterRouteSchema, {
    difficulty: difficultyToProto[request.difficulty],
    model: request.model ?? "",
    exclude: [...request.exclude],
    ...(sameModel
      ? {
          sameModel: {
            modelName: sameModel.modelName,
            quantization: sameModel.quantization,
            modelSha256: sameModel.modelSha256 ?? "",
          },
        }
      : {}),
    ...(request.reputationAbove !== undefined ? { reputationAbove: request.reputationAbove } : {}),
    ...(c
      ? {
          context: {
            asciiChars: c.asciiChars,
            otherChars: c.otherChars,
            messages: c.messages,
            answerTokens: c.answerTokens,
          },
        }
      : {}),
    ...(request.minContext !== undefined ? { minContext: request.minContext } : {}),
  });
}

/** The route a peer's waiter needs; undefined for one this code cannot read (a newer difficulty). */
export function requestOf(route: ClusterRoute): RouteRequest | undefined {
  const difficulty = difficultyFromProto(route.difficulty);
  if (!difficulty) return undefined;
  const same = route.sameModel;
  const c = route.context;
  return {
    difficulty,
    model: route.model || undefined,
    exclude: new Set(route.exclude),
    ...(same
      ? {
          sameModel: {
            modelName: same.modelName,
            quantization: same.quantization,
            ...(same.modelSha256 ? { modelSha256: same.modelSha256 } : {}),
          },
        }
      : {}),
    ...(route.reputationAbove !== undefined ? { reputationAbove: route.reputationAbove } : {}),
    ...(c
      ? {
          context: {
            asciiChars: c.asciiChars,
            otherChars: c.otherChars,
            messages: c.messages,
            answerTokens: c.answerTokens,
          },
        }
      : {}),
    ...(route.minContext !== undefined ? { minContext: route.minContext } : {}),
  };
}
