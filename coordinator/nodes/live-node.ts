// One connected node as the coordinator sees it (LiveNode): what it declared, how busy it is, which tasks it runs,
// what was measured of it, and its connection's outbox; the registry (registry.ts) holds them all.
import type { ConnectError } from "@connectrpc/connect";
import type { Gpu } from "../../gen/iris/v1/common_pb.ts";
import type { ConnectResponse } from "../../gen/iris/v1/node_pb.ts";
import type { SessionKeys } from "../../common/crypto/envelope.ts";
import type { TokenizerRates } from "../../common/tokenizer-rates.ts";
import type { NodeTier } from "../../common/vocabulary.ts";
import { contextVerdict, measuredTier, speedVerdict, type Verification } from "./capability.ts";
import { gpusOf, sameGpus, type GpuReading } from "./gpus.ts";
import { measurementKey, NodeMeasurements } from "./measurements.ts";
import type { TaskSink } from "./task-sink.ts";
import { TaskTable, type TaskChange } from "./task-table.ts";

/** Completed tasks whose service time the wait estimate looks at, per node. */
const SERVICE_TIMES_KEPT = 20;

/** What a node declared at registration (size and quantization completed from the model name when left out). */
export interface NodeCapabilities {
  modelName: string;
  parameterCount: number;
  quantization: string;
  /** The model file's fingerprint (Register.model_sha256); undefined when the node sent none. */
  modelSha256?: string;
  contextLength: number;
  tokensPerSecond: number;
  maxConcurrentTasks: number;
  gpus: GpuReading[];
  backend: string;
  agentVersion: string;
  /** Measured by the node with its model's tokenizer; undefined when its backend has none. */
  tokenizerRates?: TokenizerRates;
}

/**
 * Where a node's messages go: its stream's outbox here, or the bus to its home coordinator (cluster/remote-node.ts).
 */
export interface NodeOutbox {
  push(message: ConnectResponse): boolean;
  close(error?: ConnectError): void;
  readonly closed: boolean;
}

/**
 * What changed on a node that routing reads, or its heartbeat's readings (load, GPUs: shown, not routed on): the
 * cluster view publishes it (cluster/node-view.ts).
 */
export type NodeField = "tasks" | "paused" | "suspended" | "reputation" | "tier" | "serviceTimes" | "readings";

/** Whether an assign reached the node: true; false: not now; "unreachable": never, for this task (see sendAssign). */
export type AssignSent = boolean | "unreachable";

export class LiveNode {
  /** Tasks running on the node, by task id. */
  readonly tasks: Map<string, TaskSink> = new TaskTable((change) => {
    this.routingChanged();
    this.tasksChanged(change);
  });
  load = 0;
  #paused = false;
  /** Suspended after repeated spot-check or consensus mismatches: routing gives it no work until an admin clears it. */
  #suspended = false;
  #reputation: number;
  lastSeenAt: number;
  /** When this connection registered: of two coordinators claiming a node, the later registration wins. */
  registeredAt: number;
  /** The node's X25519 public key (Register.public_key): peers of a cluster derive the session keys from it. */
  publicKey: Uint8Array = new Uint8Array();
  /** Whether the size and quantization are as declared or parsed from the model name by the coordinator. */
  size: Verification = "declared";
  /** What its answers showed (speed, context, identity); the tier follows the measured speed (retier). */
  measured: NodeMeasurements;
  /** Assignment → result of its latest completed tasks (ms, oldest first): the queue's wait estimate. */
  readonly serviceTimes: number[] = [];
  #watcher: ((node: LiveNode, field: NodeField) => void) | undefined;
  #routingWatcher: ((node: LiveNode) => void) | undefined;
  #tier: NodeTier;

  constructor(
    readonly id: string,
    readonly accountId: string,
    readonly sessionId: string,
    tier: NodeTier,
    public tierReason: string,
    readonly capabilities: NodeCapabilities,
    reputation: number,
    /** AES-GCM keys agreed with this connection (X25519 + HKDF): task payloads travel sealed. */
    readonly keys: SessionKeys,
    protected readonly outbox: NodeOutbox,
    now: number,
  ) {
    this.#reputation = reputation;
    this.#tier = tier;
    this.lastSeenAt = now;
    this.registeredAt = now;
    this.measured = new NodeMeasurements(measurementKey(capabilities));
  }

  /** Whether the node is connected to another coordinator of the cluster (cluster/remote-node.ts). */
  get remote(): boolean {
    return false;
  }

  /** Computed at registration; changed by retier() when measured speed contradicts the declared benchmark. */
  get tier(): NodeTier {
    return this.#tier;
  }
  set tier(tier: NodeTier) {
    if (tier === this.#tier) return;
    this.#tier = tier;
    this.routingChanged();
  }

  get paused(): boolean {
    return this.#paused;
  }
  set paused(paused: boolean) {
    if (paused === this.#paused) return;
    this.#paused = paused;
    this.routingChanged();
    this.changed("paused");
  }

  get suspended(): boolean {
    return this.#suspended;
  }
  set suspended(suspended: boolean) {
    if (suspended === this.#suspended) return;
    this.#suspended = suspended;
    this.routingChanged();
    this.changed("suspended");
  }

  get reputation(): number {
    return this.#reputation;
  }
  set reputation(reputation: number) {
    if (reputation === this.#reputation) return;
    this.#reputation = reputation;
    this.routingChanged();
    this.changed("reputation");
  }

  /** Hears every change routing reads (the registry sets it when the node is added). */
  watch(watcher: (node: LiveNode, field: NodeField) => void): void {
    this.#watcher = watcher;
  }

  protected changed(field: NodeField): void {
    this.#watcher?.(this, field);
  }

  /**
   * Hears every change of what routing sorts and sifts nodes by but a closed stream (free slots, suspension,
   * reputation, tier): the registry's indexes of nodes with a free slot and of idle nodes. Apart from `watch`: a node
   * of another coordinator tells its changes to its home, not the registry, yet they are this coordinator's routing.
   */
  watchRouting(watcher: (node: LiveNode) => void): void {
    this.#routingWatcher = watcher;
  }

  /**
   * A task took or freed a slot; the node was paused or resumed, suspended or cleared, retiered, or its reputation
   * moved; or (a remote node) its home said it had room or had none.
   */
  protected routingChanged(): void {
    this.#routingWatcher?.(this);
  }

  /** A heartbeat's readings: the load, and the GPUs' (none sent, none changed); the view hears what changed. */
  heard(load: number, gpus: readonly Gpu[]): void {
    const newGpus = gpus.length > 0 && !sameGpus(gpus, this.capabilities.gpus);
    if (load === this.load && !newGpus) return;
    this.load = load;
    if (newGpus) this.capabilities.gpus = gpusOf(gpus);
    this.changed("readings");
  }

  /** A task took or freed a slot (`undefined`: all were dropped, the node is gone). */
  protected tasksChanged(_change: Parameters<TaskChange>[0]): void {
    this.changed("tasks");
  }

  /** The context window routing and context mode count on: the declared one, lowered to a refusal below it. */
  get contextLength(): number {
    return contextVerdict(this.capabilities.contextLength, this.measured.provenContext, this.measured.refusedContext)
      .effective;
  }

  /** Recomputes the tier from the declaration and the measured speed; true when the tier changed. */
  retier(): boolean {
    const c = this.capabilities;
    const decision = measuredTier(c, c.tokensPerSecond, speedVerdict(c.tokensPerSecond, this.measured.speedSamples));
    const changed = decision.tier !== this.tier;
    this.tier = decision.tier;
    this.tierReason = decision.reason;
    if (changed) this.changed("tier");
    return changed;
  }

  /** A completed task took `ms` from assignment to result; the latest SERVICE_TIMES_KEPT are kept. */
  served(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    this.serviceTimes.push(ms);
    if (this.serviceTimes.length > SERVICE_TIMES_KEPT) this.serviceTimes.shift();
    // peers estimate queue waits from them: the node's home tells them (one delta with the slot the task freed)
    this.changed("serviceTimes");
  }

  /** How many more tasks the node takes now. */
  get freeSlots(): number {
    return this.paused || this.outbox.closed ? 0 : this.capabilities.maxConcurrentTasks - this.tasks.size;
  }

  get connected(): boolean {
    return !this.outbox.closed;
  }

  send(message: ConnectResponse): boolean {
    return this.outbox.push(message);
  }

  /**
   * Sends a task assign; false when the node cannot take it now (its stream is gone, or — for a node of another
   * coordinator — its home refused: the slot was taken meanwhile), "unreachable" when this task can never reach it
   * from here (a node of another coordinator, for an assign too large to cross the cluster bus). Here that is known
   * at once; a remote node's home answers over the bus.
   */
  async sendAssign(message: ConnectResponse): Promise<AssignSent> {
    return this.send(message);
  }

  /** Ends the node's stream: with an error the node sees that code and message. */
  disconnect(error?: ConnectError): void {
    this.outbox.close(error);
  }

  /** Ends the node's connection wherever it is (for a node of another coordinator: at its home, over the bus). */
  endConnection(error: ConnectError): void {
    this.disconnect(error);
  }
}
