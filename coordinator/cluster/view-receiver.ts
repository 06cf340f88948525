// The shared, live view of nodes, receiving side: every coordinator keeps the other homes' nodes (node-view.ts
// publishes them) in its registry as RemoteNodes, routes over all of them by the same rules, asks a home for its full
// view when it missed one of its numbered views, and drops a home's nodes when it falls silent, leaves, or restarts
// (a new incarnation under its name).
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type ClusterNode,
  type ClusterView,
  ClusterViewSchema,
  ClusterViewWantedSchema,
} from "../../gen/iris/v1/cluster_pb.ts";
import { deriveSessionKeys, EnvelopeError } from "../../common/crypto/envelope.ts";
import { readViewHeadline, type ViewHeadline } from "./codec.ts";
import { Incarnations } from "./incarnations.ts";
import type { NodeViewContext } from "./node-view.ts";
import { RemoteNode, type HomeLink } from "./remote-node.ts";
import { ViewStream, type WantReason } from "./view-stream.ts";

/** Keeps the other homes' nodes in this coordinator's registry. */
export class ViewReceiver {
  /** When each home was last heard from. */
  readonly #heard = new Map<string, number>();
  /** Each home's numbered views as heard here: whether this coordinator holds all of its nodes as they are. */
  readonly #streams = new Map<string, ViewStream>();
  /** Each home's live run (kept after it falls silent: a return with another one is a restart). */
  readonly #incarnations = new Incarnations();
  /** Incarnations already reported as a second coordinator under one name. */
  readonly #duplicates = new Set<string>();
  readonly #refusedHomes = new Set<string>();
  /** Views and leavings that arrived after a part of a full view, in order: they wait for the next turn. */
  readonly #waiting: { data: Uint8Array; left: boolean }[] = [];
  #resumeScheduled = false;
  /** Full views (and parts) that answered other peers, taken as beats here without reading their nodes. */
  #passedOver = 0;
  readonly #timer: NodeJS.Timeout;
  readonly #unsubscribe: () => void;
  readonly #now: () => number;

  constructor(
    private readonly ctx: NodeViewContext,
    private readonly link: HomeLink,
    /** A coordinator was heard for the first time (or again after falling silent): it is greeted with our view. */
    private readonly onJoined: (home: string) => void = () => {},
    /** A coordinator fell silent: its nodes are dropped (and the cluster's queue forgets its waiters). */
    private readonly onLeft: (home: string) => void = () => {},
  ) {
    this.#now = ctx.now ?? Date.now;
    const unsubscribe = [
      ctx.bus.subscribe(ctx.subjects.view, (data) => this.#arrived(data, false)),
      ctx.bus.subscribe(ctx.subjects.left, (data) => this.#arrived(data, true)),
    ];
    this.#unsubscribe = () => {
      for (const off of unsubscribe) off();
    };
    this.#timer = setInterval(() => this.expire(), Math.max(50, Math.floor(ctx.viewMs / 2)));
    this.#timer.unref();
  }

  /** The homes heard from within CLUSTER_DEAD_AFTER_MS. */
  get peers(): string[] {
    return [...this.#heard.keys()];
  }

  /** Full views (and parts of them) for other peers that this coordinator, in step, took as beats. */
  get passedOver(): number {
    return this.#passedOver;
  }

  /** Whether any peer was heard lately (asked on every change of a node here: no list made). */
  get hasPeers(): boolean {
    return this.#heard.size > 0;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#unsubscribe();
    // what still waited behind a part is not applied after the stop
    this.#waiting.length = 0;
  }

  /**
   * A view or a leaving from the bus. A part of a full view ends the turn's work on views: what comes after it waits
   * for the next turn, in order, so that a full view of thousands of nodes (its parts arriving together) is decoded
   * and applied a part a turn instead of stalling this coordinator's requests for all of it.
   */
  #arrived(data: Uint8Array, left: boolean): void {
    // while a resume is due, what arrives waits behind what is waiting (nothing waits without one due)
    if (this.#resumeScheduled) {
      this.#waiting.push({ data, left });
      return;
    }
    this.#take(data, left);
  }

  #take(data: Uint8Array, left: boolean): void {
    const { logger } = this.ctx;
    if (!left && this.#passOver(data)) return;
    let view: ClusterView;
    try {
      view = fromBinary(ClusterViewSchema, data);
    } catch (err) {
      logger.error({ err }, "cluster bus: could not read a node view");
      return;
    }
    try {
      if (left) this.left(view);
      else this.receive(view);
    } catch (err) {
      logger.error(
        { err },
        left ? "cluster bus: could not apply a coordinator's leaving" : "cluster bus: could not apply a node view",
      );
    }
    if (view.parts > 1 && !this.#resumeScheduled) {
      this.#resumeScheduled = true;
      setImmediate(() => this.#resume());
    }
  }

  #resume(): void {
    this.#resumeScheduled = false;
    while (this.#waiting.length > 0 && !this.#resumeScheduled) {
      const next = this.#waiting.shift()!;
      this.#take(next.data, next.left);
    }
  }

  /**
   * A full view (or part) that answers other peers' asks or arrival, heard while this coordinator holds every earlier
   * view of the home's run and as many of its nodes: it says nothing new here, and is taken as a beat (the home alive,
   * its nodes seen) without decoding its nodes (~60 ms of CPU at 10,000 nodes). Anything else is read whole.
   */
  #passOver(data: Uint8Array): boolean {
    const { ctx } = this;
    let head: ViewHeadline;
    try {
      head = readViewHeadline(data);
    } catch {
      return false; // read whole, which logs what is wrong with it
    }
    if (head.askers.length === 0 || head.askers.includes(ctx.instance) || head.home === ctx.instance) return false;
    const stream = this.#streams.get(head.home);
    if (!stream?.inStep(head.sequence, head.nodeCount)) return false;
    if (!this.#incarnations.isCurrent(head.home, head.incarnation)) return false;
    if (!this.#ourKey(head.coordinatorPublicKey)) return false;
    const now = this.#now();
    this.#heard.set(head.home, now);
    stream.heard(head.sequence, false);
    // once a full view: its nodes seen now (a part before the last says nothing the last does not)
    if (head.parts <= 1 || head.part === head.parts) this.#beat(head.home, stream, head.nodeCount, now);
    this.#passedOver++;
    const reason = stream.want(now, ctx.viewMs);
    if (reason) this.#ask(head.home, head.incarnation, stream.sequence, reason);
    return true;
  }

  /** Whether a home's key is this coordinator's: sealed frames need one key cluster-wide. */
  #ourKey(publicKey: Uint8Array): boolean {
    return Buffer.from(publicKey).equals(Buffer.from(this.ctx.coordinatorKey.publicKey));
  }

  receive(view: ClusterView): void {
    const { ctx } = this;
    if (view.home === ctx.instance) {
      if (view.incarnation !== ctx.incarnation) this.#duplicate(view.home, view.incarnation);
      return;
    }
    if (!this.#ourKey(view.coordinatorPublicKey)) {
      // sealed frames need one key cluster-wide: this home's nodes cannot be served from here
      if (!this.#refusedHomes.has(view.home))
        ctx.logger.error(
          { home: view.home },
          "cluster: a coordinator with another COORDINATOR_PRIVATE_KEY_PATH key; its nodes are ignored (every " +
            "coordinator of a cluster needs the same key)",
        );
      this.#refusedHomes.add(view.home);
      return;
    }
    if (!this.#current(view.home, view.incarnation)) return;
    const now = this.#now();
    const joined = !this.#heard.has(view.home);
    this.#heard.set(view.home, now);
    if (joined) {
      ctx.logger.info({ home: view.home }, "cluster: a coordinator joined");
      this.onJoined(view.home);
    }
    let stream = this.#streams.get(view.home);
    if (!stream) this.#streams.set(view.home, (stream = new ViewStream()));
    // the first part of a full view is taken as a full view is: whatever its number
    if (!stream.heard(view.sequence, view.full || (view.parts > 1 && view.part === 1))) return;
    this.#apply(view, stream, now);
    const beat = !view.full && view.nodes.length === 0 && view.gone.length === 0;
    // a home that predates sequences sends its full view every CLUSTER_VIEW_MS, and hears no asks
    if (beat && view.sequence !== 0n) this.#beat(view.home, stream, view.nodeCount, now);
    else stream.counted(view.nodeCount);
    const reason = stream.want(now, ctx.viewMs);
    if (reason) this.#ask(view.home, view.incarnation, stream.sequence, reason);
  }

  #apply(view: ClusterView, stream: ViewStream, now: number): void {
    const collected = stream.part(view);
    let capacity = false;
    for (const node of view.nodes) {
      capacity = this.#upsert(view.home, node, now) || capacity;
      stream.listed.add(node.nodeId);
      collected?.add(node.nodeId);
    }
    for (const id of view.gone) {
      this.#drop(view.home, id, `the node left coordinator ${view.home}`);
      stream.listed.delete(id);
      collected?.delete(id);
    }
    // a full view: in one message, or the last of its parts when all of them were heard in order
    const listed = view.full ? new Set(view.nodes.map((node) => node.nodeId)) : stream.completed(view);
    if (listed) {
      for (const node of [...this.ctx.registry.nodes()]) {
        if (node instanceof RemoteNode && node.home === view.home && !listed.has(node.id))
          this.#drop(view.home, node.id, `the node left coordinator ${view.home}`);
      }
      for (const id of stream.listed) if (!listed.has(id)) stream.listed.delete(id);
    }
    if (capacity) this.ctx.registry.notifyCapacity();
  }

  /**
   * A beat: the home is alive with every node it listed (they were seen now), and says how many those are. A listed
   * node disconnected here (its home did not take an assign in time) needs the home's full view to come back.
   */
  #beat(home: string, stream: ViewStream, nodeCount: number, now: number): void {
    stream.counted(nodeCount);
    if (!stream.synced) return;
    const disconnected = new Set<string>();
    for (const id of stream.listed) {
      const node = this.ctx.registry.get(id);
      if (!(node instanceof RemoteNode) || node.home !== home) continue;
      if (node.connected) node.lastSeenAt = now;
      else disconnected.add(id);
    }
    stream.disconnected(disconnected);
  }

  /** Asks the home for its full view: it publishes one for every peer that asks within a turn. */
  #ask(home: string, incarnation: string, sequence: bigint, reason: WantReason): void {
    const { ctx } = this;
    if (reason !== "first")
      ctx.logger.info(
        { home, reason, sequence },
        "cluster: out of step with a coordinator's view; asking for all of it",
      );
    const want = create(ClusterViewWantedSchema, { origin: ctx.instance, incarnation, sequence, reason });
    ctx.bus.publish(ctx.subjects.want(home), toBinary(ClusterViewWantedSchema, want));
  }

  /** Drops the nodes of homes silent for longer than CLUSTER_DEAD_AFTER_MS: their tasks fail over. */
  expire(): void {
    const now = this.#now();
    for (const [home, heard] of this.#heard) {
      if (now - heard <= this.ctx.deadAfterMs) continue;
      this.ctx.logger.warn(
        { home, silentMs: now - heard },
        "cluster: a coordinator fell silent; its nodes are dropped",
      );
      this.#forget(home, `coordinator ${home} fell silent (no node view for ${now - heard} ms)`);
    }
  }

  /** A home stopped gracefully and said so: as if it had fallen silent, without the wait. */
  left(view: ClusterView): void {
    const { ctx } = this;
    if (view.home === ctx.instance || this.#refusedHomes.has(view.home)) return;
    if (!this.#ourKey(view.coordinatorPublicKey)) return;
    // an earlier run's leaving, heard after its successor's views, is not the successor's
    if (!this.#incarnations.left(view.home, view.incarnation)) return;
    ctx.logger.info({ home: view.home }, "cluster: a coordinator left; its nodes are dropped");
    this.#forget(view.home, `coordinator ${view.home} stopped`);
  }

  /**
   * Whether `incarnation` is the home's current run. A new one means the home restarted (it crashed, or stopped
   * without its leaving being heard): the previous run's nodes, waiters and assigned tasks are dropped now, as for a
   * dead home, and the caller then greets it as a newcomer. An earlier one is a second coordinator under the name.
   */
  #current(home: string, incarnation: string): boolean {
    const heard = this.#incarnations.heard(home, incarnation);
    if (heard === "retired") {
      this.#duplicate(home, incarnation);
      return false;
    }
    if (heard === "restarted" && this.#heard.has(home)) {
      this.ctx.logger.warn(
        { home, incarnation },
        "cluster: a coordinator restarted; its previous run's nodes are dropped",
      );
      this.#forget(home, `coordinator ${home} restarted`);
    }
    return true;
  }

  #duplicate(home: string, incarnation: string): void {
    const key = `${home}\u0000${incarnation}`;
    if (this.#duplicates.has(key)) return;
    this.#duplicates.add(key);
    this.ctx.logger.error(
      { home, incarnation },
      "cluster: two coordinators run under one COORDINATOR_INSTANCE; the older one's views are ignored (give each " +
        "its own name)",
    );
  }

  #forget(home: string, reason: string): void {
    this.#heard.delete(home);
    this.#streams.delete(home);
    for (const node of [...this.ctx.registry.nodes()])
      if (node instanceof RemoteNode && node.home === home) this.#drop(home, node.id, reason);
    this.onLeft(home);
  }

  /** True when the node may take work it could not before. */
  #upsert(home: string, view: ClusterNode, now: number): boolean {
    const { registry } = this.ctx;
    const existing = registry.get(view.nodeId);
    const registeredAt = Number(view.registeredAtUnixMs);
    if (
      existing instanceof RemoteNode &&
      existing.home === home &&
      existing.sessionId === view.sessionId &&
      existing.connected
    ) {
      return existing.apply(view, now);
    }
    // of two coordinators claiming the node, the later registration wins (the other connection is a stale one)
    if (existing?.connected && existing.registeredAt > registeredAt) return false;
    const node = this.#remoteNode(home, view, now);
    if (!node) return false;
    if (existing && !existing.remote)
      this.ctx.logger.info(
        { nodeId: view.nodeId, home },
        "cluster: the node registered again with another coordinator; its connection here is replaced",
      );
    registry.add(node); // a connection here, or an older remote one, is disconnected and its tasks fail over
    return false; // add() already told the queue
  }

  #remoteNode(home: string, view: ClusterNode, now: number): RemoteNode | undefined {
    const { coordinatorKey } = this.ctx;
    try {
      const keys = deriveSessionKeys(coordinatorKey.privateKey, view.publicKey, {
        coordinatorPublicKey: coordinatorKey.publicKey,
        nodePublicKey: view.publicKey,
        nodeId: view.nodeId,
        sessionId: view.sessionId,
      });
      return new RemoteNode(home, view, keys, this.link, now);
    } catch (err) {
      if (!(err instanceof EnvelopeError)) throw err;
      this.ctx.logger.warn(
        { nodeId: view.nodeId, home, err: err.message },
        "cluster: a node's public key is unusable; not routed from here",
      );
      return undefined;
    }
  }

  #drop(home: string, nodeId: string, reason: string): void {
    const node = this.ctx.registry.get(nodeId);
    if (!(node instanceof RemoteNode) || node.home !== home) return;
    node.disconnect();
    this.ctx.registry.remove(node, reason);
  }
}
