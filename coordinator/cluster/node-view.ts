// The shared, live view of nodes: each home coordinator publishes its own nodes (all of them every CLUSTER_VIEW_MS,
// and the ones that changed at once); every coordinator keeps the others' nodes in its registry as RemoteNodes,
// routes over all of them by the same rules, and drops a home's nodes when it falls silent, leaves, or restarts (a
// new incarnation under its name).
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { KeyObject } from "node:crypto";
import type { Logger } from "pino";
import { ClusterViewSchema, type ClusterNode, type ClusterView } from "../../gen/iris/v1/cluster_pb.ts";
import { deriveSessionKeys, EnvelopeError } from "../../common/crypto/envelope.ts";
import type { LiveNode, NodeRegistry } from "../nodes/registry.ts";
import type { Bus, ClusterSubjects } from "./bus.ts";
import { clusterNodeOf } from "./codec.ts";
import { Incarnations } from "./incarnations.ts";
import { RemoteNode, type HomeLink } from "./remote-node.ts";

export interface NodeViewContext {
  bus: Bus;
  subjects: ClusterSubjects;
  instance: string;
  /** This run of the coordinator: a new one each start, so that peers can tell a restart from a silence. */
  incarnation: string;
  registry: NodeRegistry;
  coordinatorKey: { privateKey: KeyObject; publicKey: Uint8Array };
  logger: Logger;
  /** How often a home publishes all its nodes (CLUSTER_VIEW_MS). */
  viewMs: number;
  /** A home silent this long is dead: its nodes are dropped and their tasks fail over (CLUSTER_DEAD_AFTER_MS). */
  deadAfterMs: number;
  now?: () => number;
}

/** Publishes this coordinator's own nodes. */
export class ViewPublisher {
  readonly #dirty = new Set<string>();
  readonly #gone = new Set<string>();
  #scheduled = false;
  readonly #timer: NodeJS.Timeout;
  readonly #unwatch: () => void;

  constructor(
    private readonly ctx: NodeViewContext,
    /** Whether any peer was heard lately: alone (a single coordinator), only a presence beat goes out. */
    private readonly hasPeers: () => boolean,
  ) {
    this.#unwatch = ctx.registry.onChange((node, change) => {
      if (node.remote) return;
      if (change === "removed") {
        // gone only when no connection of the node is left here (a replacing one publishes itself)
        if (ctx.registry.get(node.id) === undefined) this.#gone.add(node.id);
        this.#dirty.delete(node.id);
      } else {
        this.#dirty.add(node.id);
        this.#gone.delete(node.id);
      }
      this.#schedule();
    });
    this.#timer = setInterval(() => this.publishFull(), ctx.viewMs);
    this.#timer.unref();
  }

  /** All of this coordinator's nodes: peers learn of new ones, keep this home alive, and drop the ones not listed. */
  publishFull(): void {
    this.#dirty.clear();
    this.#gone.clear();
    // alone, the view would go to nobody: a beat with no nodes lets a joining peer hear us (and we answer it in full)
    if (!this.hasPeers()) this.#publish(false, [], []);
    else this.#publish(true, this.#localNodes(), []);
  }

  /** Publishes the pending changes now (shutdown), and stops. */
  stop(final = true): void {
    clearInterval(this.#timer);
    this.#unwatch();
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

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // every change of one turn of the event loop in one message (a burst of slot changes, a node and its tasks)
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#dirty.size === 0 && this.#gone.size === 0) return;
    if (!this.hasPeers()) {
      // nobody to tell; a peer that joins gets the whole view
      this.#dirty.clear();
      this.#gone.clear();
      return;
    }
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
    const view = create(ClusterViewSchema, {
      home: ctx.instance,
      incarnation: ctx.incarnation,
      coordinatorPublicKey: ctx.coordinatorKey.publicKey,
      full,
      nodes: nodes.map((node) => clusterNodeOf(node)),
      gone,
    });
    ctx.bus.publish(ctx.subjects.view, toBinary(ClusterViewSchema, view));
  }
}

/** Keeps the other homes' nodes in this coordinator's registry. */
export class ViewReceiver {
  /** When each home was last heard from. */
  readonly #heard = new Map<string, number>();
  /** Each home's live run (kept after it falls silent: a return with another one is a restart). */
  readonly #incarnations = new Incarnations();
  /** Incarnations already reported as a second coordinator under one name. */
  readonly #duplicates = new Set<string>();
  readonly #refusedHomes = new Set<string>();
  readonly #timer: NodeJS.Timeout;
  readonly #unsubscribe: () => void;
  readonly #now: () => number;

  constructor(
    private readonly ctx: NodeViewContext,
    private readonly link: HomeLink,
    /** A coordinator was heard for the first time (or again after falling silent): it needs our whole view. */
    private readonly onJoined: (home: string) => void = () => {},
    /** A coordinator fell silent: its nodes are dropped (and the cluster's queue forgets its waiters). */
    private readonly onLeft: (home: string) => void = () => {},
  ) {
    this.#now = ctx.now ?? Date.now;
    const unsubscribe = [
      ctx.bus.subscribe(ctx.subjects.view, (data) => {
        try {
          this.receive(fromBinary(ClusterViewSchema, data));
        } catch (err) {
          ctx.logger.error({ err }, "cluster bus: could not apply a node view");
        }
      }),
      ctx.bus.subscribe(ctx.subjects.left, (data) => {
        try {
          this.left(fromBinary(ClusterViewSchema, data));
        } catch (err) {
          ctx.logger.error({ err }, "cluster bus: could not apply a coordinator's leaving");
        }
      }),
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

  stop(): void {
    clearInterval(this.#timer);
    this.#unsubscribe();
  }

  receive(view: ClusterView): void {
    const { ctx } = this;
    if (view.home === ctx.instance) {
      if (view.incarnation !== ctx.incarnation) this.#duplicate(view.home, view.incarnation);
      return;
    }
    if (!Buffer.from(view.coordinatorPublicKey).equals(Buffer.from(ctx.coordinatorKey.publicKey))) {
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
    let capacity = false;
    for (const node of view.nodes) capacity = this.#upsert(view.home, node, now) || capacity;
    const listed = new Set(view.nodes.map((node) => node.nodeId));
    for (const id of view.gone) this.#drop(view.home, id, `the node left coordinator ${view.home}`);
    if (view.full) {
      for (const node of [...ctx.registry.nodes()]) {
        if (node instanceof RemoteNode && node.home === view.home && !listed.has(node.id))
          this.#drop(view.home, node.id, `the node left coordinator ${view.home}`);
      }
    }
    if (capacity) ctx.registry.notifyCapacity();
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
    if (!Buffer.from(view.coordinatorPublicKey).equals(Buffer.from(ctx.coordinatorKey.publicKey))) return;
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
