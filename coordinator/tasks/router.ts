// Chooses the node for a task and its deadline (SPEC "Task difficulty", "Node tiers").
import type { Difficulty, NodeTier } from "../../common/vocabulary.ts";
import { servesDifficulty, tiersServing } from "../nodes/tier.ts";
import type { LiveNode } from "../nodes/registry.ts";
import { fitsContext, type ContextNeed } from "./context-fit.ts";

export interface RouteRequest {
  difficulty: Difficulty;
  /** A model name or part of one; undefined means any model. */
  model: string | undefined;
  /** Nodes that already failed this task (or, for divided tasks, that its sibling parts use). */
  exclude: ReadonlySet<string>;
  /** Only the node of this id (a spot check's checker, a canary's node): looked up, not searched for. */
  only?: string;
  /** Only nodes that serve exactly this model and quantization (consensus, spot checks compare outputs). */
  sameModel?: ModelIdentity;
  /** Only nodes whose reputation is above this (a spot check's second opinion). */
  reputationAbove?: number;
  /** Only nodes whose context window holds this conversation and room for its answer (context-fit.ts). */
  context?: ContextNeed;
  /** Only nodes whose known window is at least this many tokens (after a node refused the conversation as too long). */
  minContext?: number;
}

/** What makes two nodes' deterministic outputs comparable. */
export interface ModelIdentity {
  modelName: string;
  quantization: string;
  /** The model file's fingerprint, when the node sent one. */
  modelSha256?: string;
}

export function modelIdentity(node: LiveNode): ModelIdentity {
  const c = node.capabilities;
  return {
    modelName: c.modelName,
    quantization: c.quantization,
    ...(c.modelSha256 ? { modelSha256: c.modelSha256 } : {}),
  };
}

/**
 * Same name and quantization, and no differing file fingerprints: two files under one name (a re-quantization, a
 * fine-tune) answer differently, and comparing them would punish an honest node. A missing fingerprint is no
 * evidence either way (OpenAI-compatible servers send none).
 */
export function sameModel(a: ModelIdentity, b: ModelIdentity): boolean {
  if (a.modelName !== b.modelName || a.quantization !== b.quantization) return false;
  return !a.modelSha256 || !b.modelSha256 || a.modelSha256 === b.modelSha256;
}

/** Model names that mean "any model" (OpenAI clients must send some model). */
const anyModel = new Set(["", "auto", "iris", "default"]);

export function normalizeModelHint(model: string | undefined): string | undefined {
  const hint = model?.trim().toLowerCase();
  return hint === undefined || anyModel.has(hint) ? undefined : hint;
}

export function servesModel(node: LiveNode, hint: string | undefined): boolean {
  return hint === undefined || node.capabilities.modelName.toLowerCase().includes(hint);
}

/**
 * Order of preference among nodes that can take the task: idle nodes before busy ones, then the more free
 * capacity, then the faster measured speed, then the better reputation (SPEC: "the fastest, most reputable
 * idle node wins"). In a cluster, a busy node of this coordinator comes before a busy one behind another (a
 * forwarded task pays the bus hop: assign and chunks through NATS and the node's home), and this coordinator's
 * own wins a tie; an idle node elsewhere still beats a busy one here.
 */
function better(a: LiveNode, b: LiveNode): boolean {
  const aIdle = a.tasks.size === 0;
  const bIdle = b.tasks.size === 0;
  if (aIdle !== bIdle) return aIdle;
  if (!aIdle && a.remote !== b.remote) return !a.remote;
  if (a.freeSlots !== b.freeSlots) return a.freeSlots > b.freeSlots;
  if (a.capabilities.tokensPerSecond !== b.capabilities.tokensPerSecond) {
    return a.capabilities.tokensPerSecond > b.capabilities.tokensPerSecond;
  }
  if (a.reputation !== b.reputation) return a.reputation > b.reputation;
  return !a.remote && b.remote;
}

/** Whether `node` may take the task at all, busy or not (suspended nodes take none). */
export function eligible(node: LiveNode, request: RouteRequest): boolean {
  if (node.suspended || request.exclude.has(node.id)) return false;
  if (request.only !== undefined && node.id !== request.only) return false;
  if (!servesDifficulty(node.tier, request.difficulty) || !servesModel(node, request.model)) return false;
  if (request.sameModel && !sameModel(modelIdentity(node), request.sameModel)) return false;
  if (request.context && !fitsContext(node, request.context)) return false;
  if (request.minContext !== undefined && node.contextLength < request.minContext) return false;
  return request.reputationAbove === undefined || node.reputation > request.reputationAbove;
}

/**
 * What routing reads of the registry (NodeRegistry): a node by id, its idle nodes in order, its nodes with a free
 * slot, and its nodes by model (a normalized hint).
 */
export interface RoutingNodes {
  get(id: string): LiveNode | undefined;
  idleNodes(tier: NodeTier): readonly (readonly LiveNode[])[];
  nodesWithRoom(difficulty: Difficulty): Iterable<LiveNode>;
  modelNodeCount(model: string): number;
  nodesOfModel(model: string): Iterable<LiveNode>;
}

/**
 * A request naming a model served by at most this many nodes reads those nodes rather than the idle lists, where they
 * may lie behind thousands of other models' nodes; a model served by more has an idle node near the lists' front.
 */
const FEW_MODEL_NODES = 256;

/**
 * pickNode's choice among all of `nodes`, read from the registry's indexes: an idle node beats every busy one, and
 * each serving tier's idle lists are in routing's order, most slots first, so the first eligible node of a tier's
 * first list that has one is that tier's best; only when no idle node can take the task are the nodes with room
 * read, of the serving tiers (they are busy ones then, and few when the network is busy). A request naming a model
 * few nodes serve reads those nodes instead, and one for a single node (`only`) looks that node up. `open`: whether a
 * node's free slot may go to this request (a cluster's earlier waiters elsewhere come first).
 */
export function routeNow(
  nodes: RoutingNodes,
  request: RouteRequest,
  open?: (node: LiveNode) => boolean,
): LiveNode | undefined {
  if (request.only !== undefined) {
    const node = nodes.get(request.only);
    return node && mayTake(node, request, open) ? node : undefined;
  }
  // every node that could take it is among the model's: their best is the best (pickNode reads busy and idle alike)
  if (request.model !== undefined && nodes.modelNodeCount(request.model) <= FEW_MODEL_NODES)
    return pickNode(nodes.nodesOfModel(request.model), request, open);
  let best: LiveNode | undefined;
  for (const tier of tiersServing(request.difficulty)) {
    lists: for (const list of nodes.idleNodes(tier)) {
      for (const node of list) {
        if (!mayTake(node, request, open)) continue;
        if (!best || better(node, best)) best = node;
        break lists; // the tier's later lists have fewer slots: none of theirs comes before this one
      }
    }
  }
  return best ?? pickNode(nodes.nodesWithRoom(request.difficulty), request, open);
}

/** Whether `node` may take the task now: a free slot, eligible, and (`open`) its slot may go to this request. */
function mayTake(node: LiveNode, request: RouteRequest, open?: (node: LiveNode) => boolean): boolean {
  return node.freeSlots > 0 && eligible(node, request) && (!open || open(node));
}

/** The best node that can take the task now (`open`: of those whose slot may go to it), or undefined. */
export function pickNode(
  nodes: Iterable<LiveNode>,
  request: RouteRequest,
  open?: (node: LiveNode) => boolean,
): LiveNode | undefined {
  let best: LiveNode | undefined;
  for (const node of nodes) {
    if (!mayTake(node, request, open)) continue;
    if (!best || better(node, best)) best = node;
  }
  return best;
}

export type DifficultyTimeouts = Record<Difficulty, number>;

/**
 * How long a task may run: the difficulty's timeout, or — for a large max_tokens on a slow node — twice the
 * time the node needs to generate max_tokens at its measured speed, whichever is longer.
 */
export function deadlineMs(
  timeouts: DifficultyTimeouts,
  difficulty: Difficulty,
  maxTokens: number,
  tokensPerSecond: number,
): number {
  const base = timeouts[difficulty];
  if (tokensPerSecond <= 0) return base;
  return Math.max(base, Math.ceil((2 * maxTokens * 1000) / tokensPerSecond));
}
