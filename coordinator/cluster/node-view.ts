// The shared, live view of nodes, publishing side: each home coordinator publishes the ones of its nodes that changed
// at once, a numbered beat every CLUSTER_VIEW_MS, and all of them when a peer asks (it missed a view, or is new);
// view-receiver.ts keeps the others' nodes as RemoteNodes.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import type { KeyObject } from "node:crypto";
import type { Logger } from "pino";
import { ClusterViewSchema, ClusterViewWantedSchema } from "../../gen/iris/v1/cluster_pb.ts";
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

/**
 * A full view in parts encodes this many nodes a turn of the event loop (~2–3 ms on a 2-core machine), so that a
 * view of 10,000 nodes (~50 ms of encoding) never holds the loop; the changes made meanwhile go out after it.
 */
export const FULL_VIEW_NODES_PER_TURN = 500;

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
  /** Whom the latest full view named (undefined: it was for everyone): a peer in step that it did not name skips it. */
  #lastFullFor: ReadonlySet<string> | undefined;
  #beats = 0;
  /** A flush at the end of this turn is on its way. */
  #scheduled = false;
  /** A flush after SLOT_VIEW_DELAY_MS is on its way (slot changes only). */
  #delayed: NodeJS.Timeout | undefined;
  #fullScheduled = false;
  /**
   * The peers the next full view answers (their asks, their arrival): the others that hold every view so far need not
   * read it. `#forEveryone`: it goes to all (the 30th beat, a coordinator's first view, an operator's).
   */
  readonly #askers = new Set<string>();
  #forEveryone = false;
  /** A full view in parts being encoded, a slice of its nodes a turn: deltas and beats wait behind it. */
  #spreading: { header: ViewHeader; encoded: Uint8Array[] } | undefined;
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
    // a full view being encoded goes out within a few turns, and says the same (a beat now would number before it)
    if (this.#spreading) return;
    for (const id of this.#readings) this.#dirty.add(id);
    this.#readings.clear();
    this.#flush();
    this.#beats = (this.#beats + 1) % FULL_EVERY_BEATS;
    if (this.#beats === 0 && this.hasPeers()) this.publishFull();
    else this.#publish(false, [], []);
  }

  /**
   * All of this coordinator's nodes: peers drop the ones of ours not listed. For every peer unless `everyone` is false:
   * then for those whose asks or arrival wantFull heard (a peer in step with us need not read it).
   */
  publishFull(everyone = true): void {
    this.#fullScheduled = false;
    if (everyone) this.#forEveryone = true;
    // one being encoded answers whoever asked meanwhile too (its parts name the askers when they go out)
    if (this.#spreading) return;
    // for every peer it carries the changes not yet sent; for some, they follow it as a delta, so that a peer in
    // step, which passes over a full view for others, still hears them
    if (this.#forEveryone) {
      this.#dirty.clear();
      this.#gone.clear();
      this.#readings.clear();
    }
    this.#publish(true, this.#localNodes(), []);
    this.#flush(); // nothing while its parts are encoded: they flush after them
  }

  /**
   * A full view soon (a turn later) for `asker` (a peer that asked, or joined): every ask and greeting of this turn is
   * answered by one. Without an asker it is for every peer.
   */
  wantFull(asker?: string): void {
    if (asker === undefined) this.#forEveryone = true;
    else this.#askers.add(asker);
    if (this.#fullScheduled) return;
    this.#fullScheduled = true;
    setImmediate(() => this.#fullScheduled && this.publishFull(false));
  }

  /** Whom a full view going out now answers (none named: every peer). */
  #askersNow(): string[] {
    return this.#forEveryone ? [] : [...this.#askers];
  }

  /** Whom the full view going out now answers; the next one starts afresh. */
  #takeAskers(): string[] {
    const askers = this.#askersNow();
    this.#askers.clear();
    this.#forEveryone = false;
    return askers;
  }

  /** A full view numbered `sequence` goes out, for `askers` (none: for everyone). */
  #fullGoes(sequence: bigint, askers: string[]): void {
    this.#lastFull = sequence;
    this.#lastFullFor = askers.length === 0 ? undefined : new Set(askers);
  }

  /** Publishes the pending changes now (shutdown), and stops. */
  stop(final = true): void {
    clearInterval(this.#timer);
    clearTimeout(this.#delayed);
    this.#unwatch();
    this.#fullScheduled = false;
    this.#spreading = undefined;
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
      // another run under our name is asked about its own view
      if (want.incarnation !== this.ctx.incarnation) return;
      // a full view after the asker's last is on its way, and answers it if it was for everyone or names it (a peer in
      // step, asking for a node it lost, passes over one for others)
      const answered = this.#lastFullFor === undefined || this.#lastFullFor.has(want.origin);
      if (want.sequence < this.#lastFull && answered) return;
      this.ctx.logger.debug({ peer: want.origin, reason: want.reason }, "cluster: a peer asks for our whole view");
      this.wantFull(want.origin);
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
    // behind a full view being encoded: a change sent now could be undone by a part encoded before it
    if (this.#spreading) return;
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
    const header: ViewHeader = {
      home: ctx.instance,
      incarnation: ctx.incarnation,
      coordinatorPublicKey: ctx.coordinatorKey.publicKey,
      full,
      nodeCount: this.#listed.size,
      gone,
      askers: [],
    };
    const limit = ctx.fullViewPartBytes ?? FULL_VIEW_PART_BYTES;
    // a view likely too large for one message is not encoded whole only to learn so (2.3 MB at 10,000 nodes); one
    // that would have fit after all goes in a few parts
    if (full && nodes.length >= 2 && estimatedBytes(header, nodes) > limit) {
      this.#spread(header, nodes);
      return;
    }
    const view = create(ClusterViewSchema, { ...header, nodes: nodes.map((node) => clusterNodeOf(node)) });
    view.sequence = this.#sequence + 1n;
    if (full) view.askers = this.#askersNow();
    const data = toBinary(ClusterViewSchema, view);
    if (full && data.length > limit && nodes.length >= 2) {
      this.#spread(header, nodes);
      return;
    }
    this.#sequence = view.sequence;
    if (full) this.#fullGoes(view.sequence, this.#takeAskers());
    ctx.bus.publish(ctx.subjects.view, data);
  }

  /**
   * A full view too large for one message: its nodes are encoded FULL_VIEW_NODES_PER_TURN a turn (changes wait behind
   * them), then sent as parts numbered on in a row, each with as many nodes as fit within the limit and the count of
   * all of the home's nodes (a peer checks it after the last); the changes held back follow. A node whose change
   * comes after its slice was encoded goes out again in the delta after the parts, so a peer ends with its latest.
   */
  #spread(header: ViewHeader, nodes: LiveNode[]): void {
    const spreading = { header: { ...header, full: false }, encoded: [] as Uint8Array[] };
    this.#spreading = spreading;
    const step = () => {
      if (this.#spreading !== spreading) return; // stopped
      const { encoded } = spreading;
      const end = Math.min(nodes.length, encoded.length + FULL_VIEW_NODES_PER_TURN);
      // the slice as a view of nothing but its nodes: its bytes are their entries, one after another
      const slice = nodes.slice(encoded.length, end).map((node) => clusterNodeOf(node));
      for (const entry of nodeEntries(toBinary(ClusterViewSchema, create(ClusterViewSchema, { nodes: slice })))) {
        encoded.push(entry);
      }
      if (end < nodes.length) {
        setImmediate(step);
        return;
      }
      this.#spreading = undefined;
      this.#publishParts(spreading.header, encoded);
      this.#flush();
    };
    setImmediate(step); // its first slice too: this turn has read and listed every node already
  }

  /**
   * The nodes' entries (each the `nodes` field's tag, length and node) as parts within the limit (a node larger than
   * the room of a part goes alone): a message's fields may come in any order and a repeated field's elements one
   * after another, so a part is its header's bytes followed by its nodes' entries.
   */
  #publishParts(header: ViewHeader, encoded: Uint8Array[]): void {
    const { ctx } = this;
    const limit = ctx.fullViewPartBytes ?? FULL_VIEW_PART_BYTES;
    const widest = { ...header, sequence: 2n ** 63n, part: 2 ** 31, parts: 2 ** 31 };
    const room = limit - toBinary(ClusterViewSchema, create(ClusterViewSchema, widest)).length;
    const groups: Uint8Array[][] = [];
    let used = Number.POSITIVE_INFINITY;
    for (const entry of encoded) {
      if (used + entry.length > room) {
        groups.push([]);
        used = 0;
      }
      groups.at(-1)!.push(entry);
      used += entry.length;
    }
    const first = this.#sequence + 1n;
    this.#sequence += BigInt(groups.length);
    // every ask heard while its nodes were encoded is answered by it too
    const askers = this.#takeAskers();
    this.#fullGoes(first, askers);
    groups.forEach((group, i) => {
      // all in one after all (the estimate was high): a full view, which a peer takes whole
      const place = groups.length === 1 ? { full: true } : { part: i + 1, parts: groups.length };
      const part = { ...header, sequence: first + BigInt(i), ...place, askers };
      const head = toBinary(ClusterViewSchema, create(ClusterViewSchema, part));
      ctx.bus.publish(ctx.subjects.view, Buffer.concat([head, ...group]));
    });
  }
}

/** A view's fields other than its nodes and its numbers. */
interface ViewHeader {
  home: string;
  incarnation: string;
  coordinatorPublicKey: Uint8Array;
  full: boolean;
  nodeCount: number;
  gone: string[];
  /** Whom a full view answers (set as it goes out). */
  askers: string[];
}

/** The tag of ClusterView.nodes: its field number, length-delimited (one byte: field numbers up to 15 take one). */
const NODES_TAG = (ClusterViewSchema.field.nodes.number << 3) | WireType.LengthDelimited;

/** The entries of a view of nothing but nodes (each its tag, its length as a varint, the node), as views of `bytes`. */
function nodeEntries(bytes: Uint8Array): Uint8Array[] {
  const entries: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; ) {
    if (bytes[at] !== NODES_TAG) throw new Error(`a view of nodes has a field other than nodes at byte ${at}`);
    let length = 0;
    let cursor = at + 1;
    for (let shift = 0; ; shift += 7) {
      const byte = bytes[cursor++]!;
      length += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) break;
    }
    entries.push(bytes.subarray(at, cursor + length));
    at = cursor + length;
  }
  return entries;
}

/** Nodes a full view's size is estimated from (estimatedBytes). */
const SAMPLED_NODES = 32;

/** About the bytes a view of `nodes` takes whole: its header with an even sample of them, scaled to all of them. */
function estimatedBytes(header: ViewHeader, nodes: LiveNode[]): number {
  const count = nodes.length;
  const sample =
    count <= SAMPLED_NODES
      ? nodes
      : Array.from({ length: SAMPLED_NODES }, (_, i) => nodes[Math.floor((i * count) / SAMPLED_NODES)]!);
  const empty = toBinary(ClusterViewSchema, create(ClusterViewSchema, header)).length;
  const view = create(ClusterViewSchema, { ...header, nodes: sample.map((node) => clusterNodeOf(node)) });
  const sampled = toBinary(ClusterViewSchema, view).length;
  return empty + Math.ceil(((sampled - empty) * count) / sample.length);
}
