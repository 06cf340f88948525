// The live nodes of this coordinator: who is connected, what each serves, how busy it is, which tasks it runs.
import { Code, ConnectError } from "@connectrpc/connect";
import { NODE_TIERS, type Difficulty, type NodeTier } from "../../common/vocabulary.ts";
import { IdleIndex } from "./idle-index.ts";
import type { LiveNode, NodeField } from "./live-node.ts";
import { servesDifficulty, tiersServing } from "./tier.ts";

// re-exported: the node's own file is live-node.ts; the rest of the coordinator imports it with the registry
export { type AssignSent, LiveNode, type NodeCapabilities, type NodeField, type NodeOutbox } from "./live-node.ts";
// re-exported: the cluster's sinks (cluster/) import it with the rest of the registry
export type { TaskSink } from "./task-sink.ts";

type Listener = () => void;
const NO_NODES: ReadonlySet<LiveNode> = new Set();
/** Hears a node added, removed, or changed in what routing reads. */
type ChangeListener = (node: LiveNode, change: NodeField | "added" | "removed") => void;
/** Hears about a node whose measurements changed: `previousTier` is set when its tier moved. */
type MeasuredListener = (node: LiveNode, previousTier: NodeTier | undefined) => void;

export class NodeRegistry {
  readonly #nodes = new Map<string, LiveNode>();
  readonly #capacityListeners = new Set<Listener>();
  readonly #measuredListeners = new Set<MeasuredListener>();
  readonly #changeListeners = new Set<ChangeListener>();
  /**
   * The registered nodes with a free slot by tier, kept as slots are taken and freed: routing and the queue's drain
   * read these, not every node, and only the tiers that serve the request, so a busy network of 10,000 nodes costs a
   * request a few nodes' reading, and a freed slot does not read thousands of idle small nodes for the requests that
   * wait for a large one (npm run bench:routing).
   */
  readonly #withRoom = new NodesByTier();
  /** The idle nodes by tier and slots, in routing's order (idle-index.ts): an idle network's routing reads a few. */
  readonly #idle = new IdleIndex();
  /**
   * The registered nodes by tier, busy or not: whether any node could take a request reads the tiers that serve it,
   * not a network of 10,000 small nodes for the few that serve a harder request (~0.9 ms a check, bench:routing).
   */
  readonly #byTier = new NodesByTier();
  /**
   * The registered nodes by the model name each declared (fixed for a connection), with the name in lower case: a
   * request naming a model reads the few names online and the nodes of those named like it, not 10,000 nodes for the
   * few that serve a model (lower-casing each one's name).
   */
  readonly #byModel = new Map<string, { lower: string; nodes: Set<LiveNode> }>();
  readonly #routingChanged = (node: LiveNode) => {
    const registered = this.#nodes.get(node.id) === node;
    this.#idle.update(node, registered);
    this.#byTier.place(node, registered ? node.tier : undefined);
    this.#withRoom.place(node, registered && node.freeSlots > 0 ? node.tier : undefined);
  };

  get size(): number {
    return this.#nodes.size;
  }

  get(id: string): LiveNode | undefined {
    return this.#nodes.get(id);
  }

  nodes(): IterableIterator<LiveNode> {
    return this.#nodes.values();
  }

  /**
   * The nodes with a free slot (freeSlots > 0), of the tiers that serve `difficulty` if given, in no set order: what
   * routing reads when no idle node can take a request, and what the queue's drain offers a waiter. A node whose
   * stream closed a moment ago may still be among them until it is removed.
   */
  nodesWithRoom(difficulty?: Difficulty): Iterable<LiveNode> {
    return this.#withRoom.nodes(difficulty === undefined ? NODE_TIERS : tiersServing(difficulty));
  }

  /**
   * The idle nodes of `tier` (running nothing, a free slot, not suspended), one list per slot count, most slots
   * first, each in routing's order: the faster, the more reputable, this coordinator's own. A node whose stream closed
   * a moment ago may still be among them until it is removed.
   */
  idleNodes(tier: NodeTier): readonly (readonly LiveNode[])[] {
    return this.#idle.lists(tier);
  }

  /**
   * The registered nodes whose tier serves `difficulty` and, with `model` (a hint: normalized, lower case), whose
   * model's name contains it; read from whichever index holds fewer (the serving tiers' nodes or the model's).
   */
  *nodesServing(difficulty: Difficulty, model?: string): Generator<LiveNode, void, undefined> {
    const tiers = tiersServing(difficulty);
    if (model === undefined) {
      yield* this.#byTier.nodes(tiers);
      return;
    }
    if (this.modelNodeCount(model) <= this.#byTier.count(tiers)) {
      for (const node of this.nodesOfModel(model)) if (servesDifficulty(node.tier, difficulty)) yield node;
      return;
    }
    for (const node of this.nodesServing(difficulty))
      if (this.#byModel.get(node.capabilities.modelName)?.lower.includes(model)) yield node;
  }

  /** The registered nodes whose model has exactly this name (a spot check's and a canary's peers), busy or not. */
  nodesNamed(modelName: string): ReadonlySet<LiveNode> {
    return this.#byModel.get(modelName)?.nodes ?? NO_NODES;
  }

  /** The model names of the registered nodes, as they declared them, each once. */
  modelNames(): IterableIterator<string> {
    return this.#byModel.keys();
  }

  /** Whether some registered node's model name contains `model` (a normalized, lower-case hint). */
  servesModel(model: string): boolean {
    return !this.#modelsLike(model).next().done;
  }

  /** How many registered nodes serve a model named like `model` (a normalized, lower-case hint). */
  modelNodeCount(model: string): number {
    let count = 0;
    for (const nodes of this.#modelsLike(model)) count += nodes.size;
    return count;
  }

  /** The registered nodes whose model name contains `model` (a normalized, lower-case hint), busy or not. */
  *nodesOfModel(model: string): Generator<LiveNode, void, undefined> {
    for (const nodes of this.#modelsLike(model)) yield* nodes;
  }

  /** The nodes of each model name online that contains `model` (a normalized, lower-case hint). */
  *#modelsLike(model: string): Generator<ReadonlySet<LiveNode>, void, undefined> {
    for (const entry of this.#byModel.values()) if (entry.lower.includes(model)) yield entry.nodes;
  }

  /** Puts `node` under its model's name while registered (`registered` false: takes it out). */
  #placeModel(node: LiveNode, registered: boolean): void {
    const name = node.capabilities.modelName;
    let entry = this.#byModel.get(name);
    if (!registered) {
      if (entry?.nodes.delete(node) && entry.nodes.size === 0) this.#byModel.delete(name);
      return;
    }
    if (!entry) this.#byModel.set(name, (entry = { lower: name.toLowerCase(), nodes: new Set() }));
    entry.nodes.add(node);
  }

  /** Adds a node; a node already connected under the same id is disconnected and its tasks lost. */
  add(node: LiveNode): void {
    const previous = this.#nodes.get(node.id);
    this.#nodes.set(node.id, node);
    node.watch((changed, field) => this.#changed(changed, field));
    node.watchRouting(this.#routingChanged);
    this.#routingChanged(node);
    if (previous) this.#placeModel(previous, false);
    this.#placeModel(node, true);
    this.#changed(node, "added");
    if (previous) {
      this.#withRoom.place(previous, undefined);
      this.#idle.update(previous, false);
      this.#byTier.place(previous, undefined);
      previous.disconnect(new ConnectError("replaced by a newer connection with the same node id", Code.Aborted));
      this.#loseTasks(previous, "the node reconnected; its previous connection was replaced");
    }
    this.notifyCapacity();
  }

  /** Removes a node if it is still the registered one for its id, and hands its tasks back. */
  remove(node: LiveNode, reason: string): void {
    const registered = this.#nodes.get(node.id) === node;
    if (registered) {
      this.#nodes.delete(node.id);
      this.#placeModel(node, false);
    }
    this.#withRoom.place(node, undefined);
    this.#idle.update(node, false);
    this.#byTier.place(node, undefined);
    this.#loseTasks(node, reason);
    if (registered) this.#changed(node, "removed");
  }

  /** Hears every node added or removed, and every change of what routing reads of one (the cluster view). */
  onChange(listener: ChangeListener): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  #changed(node: LiveNode, change: NodeField | "added" | "removed"): void {
    for (const listener of this.#changeListeners) listener(node, change);
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

  /** Called after a node's measurements changed: re-tiers it and tells the listeners (who persist and log). */
  measured(node: LiveNode): void {
    const previous = node.tier;
    const moved = node.retier();
    // a node of another coordinator: its home keeps (and writes) its measurements, which reach it over the bus
    if (node.remote) {
      if (moved) this.notifyCapacity();
      return;
    }
    for (const listener of this.#measuredListeners) listener(node, moved ? previous : undefined);
    // a node that moved up may take queued work it could not before
    if (moved) this.notifyCapacity();
  }

  onMeasured(listener: MeasuredListener): () => void {
    this.#measuredListeners.add(listener);
    return () => this.#measuredListeners.delete(listener);
  }

  /** Nodes that missed heartbeats for longer than `timeoutMs` (the caller disconnects them). */
  stale(now: number, timeoutMs: number): LiveNode[] {
    // a node of another coordinator is its home's to watch; the cluster view expires it with its home
    return [...this.#nodes.values()].filter((node) => !node.remote && now - node.lastSeenAt > timeoutMs);
  }

  /** Whether any connected, unsuspended node's tier serves `difficulty` (busy or not). */
  anyServing(difficulty: Difficulty): boolean {
    // a suspended node takes no work: a network of only suspended nodes has no node for the request, not a busy one
    for (const node of this.nodesServing(difficulty)) if (!node.suspended) return true;
    return false;
  }
}

/** Nodes kept by tier, each in one tier's set at most, moved when its tier changes (the registry's indexes by tier). */
class NodesByTier {
  readonly #sets = new Map<NodeTier, Set<LiveNode>>();
  readonly #tierOf = new Map<LiveNode, NodeTier>();

  /** Puts `node` among `tier`'s nodes, moving it from another tier's; undefined takes it out. */
  place(node: LiveNode, tier: NodeTier | undefined): void {
    const was = this.#tierOf.get(node);
    if (was === tier) return;
    if (was !== undefined) this.#sets.get(was)!.delete(node);
    if (tier === undefined) {
      this.#tierOf.delete(node);
      return;
    }
    this.#tierOf.set(node, tier);
    let nodes = this.#sets.get(tier);
    if (!nodes) this.#sets.set(tier, (nodes = new Set()));
    nodes.add(node);
  }

  /** The nodes of `tiers`, tier by tier, in no set order within one. */
  *nodes(tiers: readonly NodeTier[]): Generator<LiveNode, void, undefined> {
    for (const tier of tiers) {
      const nodes = this.#sets.get(tier);
      if (nodes) yield* nodes;
    }
  }

  /** How many nodes `tiers` hold. */
  count(tiers: readonly NodeTier[]): number {
    let count = 0;
    for (const tier of tiers) count += this.#sets.get(tier)?.size ?? 0;
    return count;
  }
}
