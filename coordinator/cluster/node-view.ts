// The shared, live view of nodes, publishing side: each home coordinator publishes the ones of its nodes that changed
// at once, a numbered beat every CLUSTER_VIEW_MS, and all of them when a peer asks (it missed a view, or is new);
// view-receiver.ts keeps the others' nodes as RemoteNodes.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { KeyObject } from "node:crypto";
import type { Logger } from "pino";
import { type ClusterView, ClusterViewSchema, ClusterViewWantedSchema } from "../../gen/iris/v1/cluster_pb.ts";
import type { LiveNode, NodeField, NodeRegistry } from "../nodes/registry.ts";
import type { Bus, ClusterSubjects } from "./bus.ts";
import { clusterNodeOf } from "./codec.ts";

export interface NodeViewContext {
  bus: Bus;
  subjects: ClusterSubjects;
  instance: string;
  /** This run of the coordinator: a new one each start, so that peers can tell a restart from a silence. */
  incarnation: string;
  registry: NodeRegistry;
  coordinatorKey: { privateKey: KeyObject; publicKey: Uint8Array };
  logger: Logger;
  /** How often a home says it is alive (CLUSTER_VIEW_MS). */
  viewMs: number;
  /** A home silent this long is dead: its nodes are dropped and their tasks fail over (CLUSTER_DEAD_AFTER_MS). */
  deadAfterMs: number;
  now?: () => number;
  /** Tests: the most bytes a full view's message may take before it goes in parts (FULL_VIEW_PART_BYTES). */
  fullViewPartBytes?: number;
}

/**
 * A full view larger than this goes in parts (ClusterView.part): NATS refuses a message over its max_payload (1 MB by
 * default; a full view takes ~220–400 bytes a node, so 2.3 MB at 10,000 nodes), and a peer decodes and applies one part
 * a turn of its event loop instead of stalling for the whole view (~100 ms at 10,000 nodes on a 2-core machine).
 */
export const FULL_VIEW_PART_BYTES = 128 * 1024;

/**
 * A slot taken or freed (a task's start or end, with the service time, speed and reputation it brought) waits this
 * long for others to go with it, unless a peer has requests waiting or was told the node is full (either may want the
 * slot now): one request at a time, a view per start and per end cost the peers and nats-server about 1 ms of CPU a
 * request and added ~0.5 ms to its first token on a 2-core machine. A peer may route to a slot taken this long ago;
 * the home then answers "busy" and the request keeps its place in the queue. Every other change (a node added or
 * gone, paused, suspended, retiered) goes out at once, and takes the waiting ones with it.
 */
export const SLOT_VIEW_DELAY_MS = 10;

/** What a task's start and end change: routing's order of preference among nodes that are all routable. */
const delayable = new Set<string>(["tasks", "serviceTimes", "reputation", "measured"]);

/**
 * Every this many beats a home publishes its full view instead: it mends whatever a peer holds wrong that neither
 * the numbers nor the count show.
 */
export const FULL_EVERY_BEATS = 30;

/** Publishes this coordinator's own nodes. */
export class ViewPublisher {
  readonly #dirty = new Set<string>();
  readonly #gone = new Set<string>();
  /** Nodes whose heartbeat readings (load, GPUs) changed: they go out with the next beat, not at once. */
  readonly #readings = new Set<string>();
  /** The nodes a peer that heard every view holds: its count goes out with each view. */
  readonly #listed = new Set<string>();
  /** Nodes the last view listing them showed without a free slot. */
  readonly #toldFull = new Set<string>();
  #sequence = 0n;
  /** The number of the latest full view: an ask from before it is answered by it already. */
  #lastFull = 0n;
  #beats = 0;
  /** A flush at the end of this turn is on its way. */
  #scheduled = false;
  /** A flush after SLOT_VIEW_DELAY_MS is on its way (slot changes only). */
  #delayed: NodeJS.Timeout | undefined;
  #fullScheduled = false;
  readonly #timer: NodeJS.Timeout;
  readonly #unwatch: () => void;

  constructor(
    private readonly ctx: NodeViewContext,
    /** Whether any peer was heard lately: alone (a single coordinator), changes are not sent, only beats. */
    private readonly hasPeers: () => boolean,
    /** Whether a peer has requests waiting: a freed slot then goes out at once (SLOT_VIEW_DELAY_MS). */
    private readonly othersWaiting: () => boolean = () => true,
  ) {
    const { registry } = ctx;
    const unwatch = [
      registry.onChange((node, change) => {
        if (change !== "readings") this.#changed(node, change === "removed", change);
        else if (!node.remote) this.#readings.add(node.id);
      }),
      // measurements (speed, context proven or refused, a canary's verdict) change what routing reads too
      registry.onMeasured((node) => this.#changed(node, false, "measured")),
      ctx.bus.subscribe(ctx.subjects.want(ctx.instance), (data) => this.#wanted(data)),
    ];
    this.#unwatch = () => {
      for (const off of unwatch) off();
    };
    this.#timer = setInterval(() => this.beat(), ctx.viewMs);
    this.#timer.unref();
  }

  /**
   * Every CLUSTER_VIEW_MS: the changes still pending with the nodes whose readings changed since the last beat (at
   * most one record a node a beat, however often its heartbeats come), then a beat (alive; its count of nodes).
   */
  beat(): void {
    for (const id of this.#readings) this.#dirty.add(id);
    this.#readings.clear();
    this.#flush();
    this.#beats = (this.#beats + 1) % FULL_EVERY_BEATS;
    if (this.#beats === 0 && this.hasPeers()) this.publishFull();
    else this.#publish(false, [], []);
  }

  /** All of this coordinator's nodes: peers drop the ones of ours not listed. */
  publishFull(): void {
    this.#fullScheduled = false;
    this.#dirty.clear();
    this.#gone.clear();
    this.#readings.clear();
    this.#publish(true, this.#localNodes(), []);
  }

  /** A full view soon (a turn later): every ask and greeting of this turn is answered by one. */
  wantFull(): void {
    if (this.#fullScheduled) return;
    this.#fullScheduled = true;
    setImmediate(() => this.#fullScheduled && this.publishFull());
  }

  /** Publishes the pending changes now (shutdown), and stops. */
  stop(final = true): void {
    clearInterval(this.#timer);
    clearTimeout(this.#delayed);
    this.#unwatch();
    this.#fullScheduled = false;
    if (final) this.#flush();
  }

  /**
   * Says this coordinator is leaving (a graceful stop): peers drop its nodes, its waiters and the tasks it assigned
   * now, instead of after CLUSTER_DEAD_AFTER_MS of silence, and hear it as a newcomer if it comes back under its name.
   */
  publishLeft(): void {
    const { ctx } = this;
    const view = create(ClusterViewSchema, {
      home: ctx.instance,
      incarnation: ctx.incarnation,
      coordinatorPublicKey: ctx.coordinatorKey.publicKey,
      full: true,
    });
    ctx.bus.publish(ctx.subjects.left, toBinary(ClusterViewSchema, view));
  }

  #changed(node: LiveNode, removed: boolean, change: NodeField | "added" | "removed" | "measured"): void {
    if (node.remote) return;
    if (removed) {
      // gone only when no connection of the node is left here (a replacing one publishes itself)
      if (this.ctx.registry.get(node.id) === undefined) this.#gone.add(node.id);
      this.#dirty.delete(node.id);
      this.#readings.delete(node.id);
    } else {
      this.#dirty.add(node.id);
      this.#gone.delete(node.id);
    }
    // alone, nobody hears a change: the next beat numbers what is pending (a peer that holds our nodes sees the gap),
    // and a peer that joins is greeted with the full view
    if (!this.hasPeers()) return;
    // a slot freed on a node peers were told is full goes out at once: they may be holding requests for it
    const freed = this.#toldFull.has(node.id) && node.freeSlots > 0;
    if (delayable.has(change) && !freed && !this.othersWaiting()) this.#scheduleLater();
    else this.#schedule();
  }

  #wanted(data: Uint8Array): void {
    try {
      const want = fromBinary(ClusterViewWantedSchema, data);
      // another run under our name is asked about its own view; a full view after the asker's last is on its way
      if (want.incarnation !== this.ctx.incarnation || want.sequence < this.#lastFull) return;
      this.ctx.logger.debug({ peer: want.origin, reason: want.reason }, "cluster: a peer asks for our whole view");
      this.wantFull();
    } catch (err) {
      this.ctx.logger.error({ err }, "cluster bus: could not read an ask for our view");
    }
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // every change of one turn of the event loop in one message (a burst of slot changes, a node and its tasks)
    setImmediate(() => this.#flush());
  }

  #scheduleLater(): void {
    if (this.#scheduled || this.#delayed) return;
    this.#delayed = setTimeout(() => this.#flush(), SLOT_VIEW_DELAY_MS);
  }

  #flush(): void {
    this.#scheduled = false;
    clearTimeout(this.#delayed);
    this.#delayed = undefined;
    if (this.#dirty.size === 0 && this.#gone.size === 0) return;
    const nodes = [...this.#dirty]
      .map((id) => this.ctx.registry.get(id))
      .filter((node): node is LiveNode => node !== undefined && !node.remote);
    const gone = [...this.#gone];
    this.#dirty.clear();
    this.#gone.clear();
    this.#publish(false, nodes, gone);
  }

  #localNodes(): LiveNode[] {
    return [...this.ctx.registry.nodes()].filter((node) => !node.remote && node.connected);
  }

  #publish(full: boolean, nodes: LiveNode[], gone: string[]): void {
    const { ctx } = this;
    if (full) {
      this.#listed.clear();
      this.#toldFull.clear();
    }
    for (const node of nodes) {
      this.#listed.add(node.id);
      if (node.freeSlots > 0) this.#toldFull.delete(node.id);
      else this.#toldFull.add(node.id);
    }
    for (const id of gone) {
      this.#listed.delete(id);
      this.#toldFull.delete(id);
    }
    // alone, a change goes to nobody; it keeps its number, so a peer that still holds our nodes sees one missing
    if (nodes.length + gone.length > 0 && !full && !this.hasPeers()) {
      ++this.#sequence;
      return;
    }
    const view = create(ClusterViewSchema, {
      home: ctx.instance,
      incarnation: ctx.incarnation,
      coordinatorPublicKey: ctx.coordinatorKey.publicKey,
      full,
      nodeCount: this.#listed.size,
      nodes: nodes.map((node) => clusterNodeOf(node)),
      gone,
    });
    const sequence = ++this.#sequence;
    if (full) this.#lastFull = sequence;
    view.sequence = sequence;
    const limit = ctx.fullViewPartBytes ?? FULL_VIEW_PART_BYTES;
    // a view surely too large for one message is not encoded whole only to learn so (2.3 MB at 10,000 nodes)
    const estimate = full && view.nodes.length >= 2 ? estimatedBytes(view) : 0;
    if (estimate > 2 * limit) {
      this.#publishParts(view, estimate);
      return;
    }
    const data = toBinary(ClusterViewSchema, view);
    if (!full || data.length <= limit || view.nodes.length < 2) {
      ctx.bus.publish(ctx.subjects.view, data);
      return;
    }
    this.#publishParts(view, data.length);
  }

  /**
   * A full view too large for one message, as parts numbered on from the whole view's number (each counts all of the
   * home's nodes: a peer checks the count after the last). Nodes are split evenly by `bytes` (the view's size whole,
   * or an estimate), with room to spare; should a part still be over the limit (nodes of very uneven size, or an
   * estimate too low), the split is made twice as fine.
   */
  #publishParts(view: ClusterView, bytes: number): void {
    const { ctx } = this;
    const limit = ctx.fullViewPartBytes ?? FULL_VIEW_PART_BYTES;
    const first = view.sequence;
    for (let wanted = Math.ceil((bytes * 4) / (limit * 3)); ; wanted *= 2) {
      const perPart = Math.ceil(view.nodes.length / wanted);
      const parts = Math.ceil(view.nodes.length / perPart);
      const encoded: Uint8Array[] = [];
      for (let i = 0; i < parts; i++) {
        const nodes = view.nodes.slice(i * perPart, (i + 1) * perPart);
        const part = { ...view, full: false, nodes, sequence: first + BigInt(i), part: i + 1, parts };
        encoded.push(toBinary(ClusterViewSchema, part));
      }
      if (perPart > 1 && encoded.some((data) => data.length > limit)) continue;
      this.#sequence = first + BigInt(parts - 1);
      for (const data of encoded) ctx.bus.publish(ctx.subjects.view, data);
      return;
    }
  }
}

/** Nodes a full view's size is estimated from (estimatedBytes). */
const SAMPLED_NODES = 32;

/** About the bytes `view` takes whole: the view with an even sample of its nodes, scaled to all of them. */
function estimatedBytes(view: ClusterView): number {
  const count = view.nodes.length;
  if (count <= SAMPLED_NODES) return toBinary(ClusterViewSchema, view).length;
  const step = count / SAMPLED_NODES;
  const nodes = Array.from({ length: SAMPLED_NODES }, (_, i) => view.nodes[Math.floor(i * step)]!);
  const empty = toBinary(ClusterViewSchema, { ...view, nodes: [] }).length;
  const sampled = toBinary(ClusterViewSchema, { ...view, nodes }).length;
  return empty + Math.ceil(((sampled - empty) * count) / SAMPLED_NODES);
}
