// The shared, live view of nodes, publishing side: each home coordinator publishes its own nodes (all of them every
// CLUSTER_VIEW_MS, and the ones that changed at once); view-receiver.ts keeps the others' nodes as RemoteNodes.
import { create, toBinary } from "@bufbuild/protobuf";
import type { KeyObject } from "node:crypto";
import type { Logger } from "pino";
import { ClusterViewSchema } from "../../gen/iris/v1/cluster_pb.ts";
import type { LiveNode, NodeRegistry } from "../nodes/registry.ts";
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
