// The live nodes of this coordinator: who is connected, what each serves, how busy it is, which tasks it runs.
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectResponse, TaskChunk, TaskError, TaskResult } from "../../gen/iris/v1/node_pb.ts";
import type { Channel } from "../../common/channel.ts";
import type { SessionKeys } from "../../common/crypto/envelope.ts";
import type { TokenizerRates } from "../../common/tokenizer-rates.ts";
import type { Difficulty, NodeTier } from "../db/schema.ts";

/** What a node declared at registration (and its measured speed). */
export interface NodeCapabilities {
  modelName: string;
  parameterCount: number;
  quantization: string;
  contextLength: number;
  tokensPerSecond: number;
  maxConcurrentTasks: number;
  gpus: { name: string; vramTotalMb: number; vramUsedMb: number; utilizationPercent: number }[];
  backend: string;
  agentVersion: string;
  /** Measured by the node with its model's tokenizer; undefined when its backend has none. */
  tokenizerRates?: TokenizerRates;
}

/** Where a node's messages about one task go: the orchestrator's attempt that assigned it. */
export interface TaskSink {
  chunk(chunk: TaskChunk): void;
  result(result: TaskResult): void;
  error(error: TaskError): void;
  /** The node disconnected, missed heartbeats or was replaced while running the task. */
  lost(reason: string): void;
}

export class LiveNode {
  /** Tasks running on the node, by task id. */
  readonly tasks = new Map<string, TaskSink>();
  load = 0;
  paused = false;
  /** Suspended after repeated spot-check or consensus mismatches: routing gives it no work until an admin clears it. */
  suspended = false;
  lastSeenAt: number;

  constructor(
    readonly id: string,
    readonly accountId: string,
    readonly sessionId: string,
    readonly tier: NodeTier,
    readonly tierReason: string,
    readonly capabilities: NodeCapabilities,
    public reputation: number,
    /** AES-GCM keys agreed with this connection (X25519 + HKDF): task payloads travel sealed. */
    readonly keys: SessionKeys,
    private readonly outbox: Channel<ConnectResponse>,
    now: number,
  ) {
    this.lastSeenAt = now;
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

  /** Ends the node's stream: with an error the node sees that code and message. */
  disconnect(error?: ConnectError): void {
    this.outbox.close(error);
  }
}

type Listener = () => void;

export class NodeRegistry {
  readonly #nodes = new Map<string, LiveNode>();
  readonly #capacityListeners = new Set<Listener>();

  get size(): number {
    return this.#nodes.size;
  }

  get(id: string): LiveNode | undefined {
    return this.#nodes.get(id);
  }

  nodes(): IterableIterator<LiveNode> {
    return this.#nodes.values();
  }

  /** Adds a node; a node already connected under the same id is disconnected and its tasks lost. */
  add(node: LiveNode): void {
    const previous = this.#nodes.get(node.id);
    this.#nodes.set(node.id, node);
    if (previous) {
      previous.disconnect(new ConnectError("replaced by a newer connection with the same node id", Code.Aborted));
      this.#loseTasks(previous, "the node reconnected; its previous connection was replaced");
    }
    this.notifyCapacity();
  }

  /** Removes a node if it is still the registered one for its id, and hands its tasks back. */
  remove(node: LiveNode, reason: string): void {
    if (this.#nodes.get(node.id) === node) this.#nodes.delete(node.id);
    this.#loseTasks(node, reason);
  }

  #loseTasks(node: LiveNode, reason: string): void {
    const sinks = [...node.tasks.values()];
    node.tasks.clear();
    for (const sink of sinks) sink.lost(reason);
  }

  /** Called whenever some node may take work it could not before (joined, freed a slot, unpaused). */
  onCapacity(listener: Listener): () => void {
    this.#capacityListeners.add(listener);
    return () => this.#capacityListeners.delete(listener);
  }

  notifyCapacity(): void {
    for (const listener of this.#capacityListeners) listener();
  }

  /** Nodes that missed heartbeats for longer than `timeoutMs` (the caller disconnects them). */
  stale(now: number, timeoutMs: number): LiveNode[] {
    return [...this.#nodes.values()].filter((node) => now - node.lastSeenAt > timeoutMs);
  }

  /** Whether any connected, unsuspended node's tier serves `difficulty` (busy or not). */
  anyServing(serves: (tier: NodeTier, difficulty: Difficulty) => boolean, difficulty: Difficulty): boolean {
    // a suspended node takes no work: a network of only suspended nodes has no node for the request, not a busy one
    for (const node of this.#nodes.values()) if (!node.suspended && serves(node.tier, difficulty)) return true;
    return false;
  }
}
