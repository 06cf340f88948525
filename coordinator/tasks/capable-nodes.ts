// Before a request waits for a node: is any node online that could ever take it? The queue is for capable nodes
// that are busy; with none connected (of the tier, or with the window the conversation needs) the caller hears so at
// once.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Difficulty, NodeTier } from "../../common/vocabulary.ts";
import type { LiveNode } from "../nodes/registry.ts";
import { tiersServing } from "../nodes/tier.ts";
import { contextTooLong, type ContextNeed } from "./context-fit.ts";
import { eligible, type RouteRequest } from "./router.ts";

/** The connected nodes that could take `request` once free (busy or paused ones included). */
export function capableNodes(nodes: Iterable<LiveNode>, request: RouteRequest): LiveNode[] {
  const capable: LiveNode[] = [];
  for (const node of nodes) if (node.connected && eligible(node, request)) capable.push(node);
  return capable;
}

/**
 * Where requireCapableNode looks: every node, and those whose tier serves a difficulty and (a normalized hint) whose
 * model is named like `model` (NodeRegistry).
 */
export interface CapableNodeSource {
  nodes(): Iterable<LiveNode>;
  nodesServing(difficulty: Difficulty, model?: string): Iterable<LiveNode>;
}

/**
 * Throws Unavailable when no connected node's tier serves the request (naming the tier it needs and what is online),
 * and FailedPrecondition when some do but none's context window holds `request.context`.
 */
export function requireCapableNode(source: CapableNodeSource, request: RouteRequest): void {
  // the common case, on every request: a connected node that takes it as it is ends the search, among the nodes of
  // the tiers that serve the request only, or of the model it names where those are fewer (10,000 small nodes and a
  // few large ones: a few µs for a hard request, where reading every node for the large ones took ~0.9 ms); only a
  // refusal needs them all, to say why
  for (const node of source.nodesServing(request.difficulty, request.model))
    if (node.connected && eligible(node, request)) return;
  const all = [...source.nodes()];
  const { context, ...withoutContext } = request;
  const capable = capableNodes(all, withoutContext);
  if (capable.length === 0) throw noCapableNode(all, request);
  if (context && !capable.some((node) => eligible(node, request))) throw contextTooLong(context, capable);
}

/**
 * After `refusedBy` answered CONTEXT_TOO_LONG: from now on the request takes only nodes with a larger window
 * (`request.minContext` is raised). Returns the refusal in words when no online node has one, else undefined (retry).
 */
export function afterContextRefusal(
  nodes: Iterable<LiveNode>,
  request: RouteRequest,
  refusedBy: LiveNode,
  need: ContextNeed,
): ConnectError | undefined {
  request.minContext = Math.max(
    request.minContext ?? 0,
    refusedBy.contextLength + 1,
    refusedBy.capabilities.contextLength + 1,
  );
  const all = [...nodes];
  if (capableNodes(all, request).length > 0) return undefined;
  return contextTooLong(need, capableNodes(all, { ...request, minContext: undefined, context: undefined }), refusedBy);
}

function noCapableNode(all: readonly LiveNode[], request: RouteRequest): ConnectError {
  const model = request.model !== undefined ? ` serving a model named like "${request.model}"` : "";
  const online = all.filter((node) => node.connected && !node.suspended);
  const byTier = new Map<NodeTier, number>();
  for (const node of online) byTier.set(node.tier, (byTier.get(node.tier) ?? 0) + 1);
  const suspended = all.some((node) => node.connected && node.suspended);
  const others =
    online.length === 0
      ? suspended
        ? "the connected nodes are suspended"
        : "no node is online"
      : `online now: ${[...byTier].map(([tier, n]) => `${n} ${tier} node${n === 1 ? "" : "s"}`).join(", ")}`;
  return new ConnectError(
    `no node that serves ${request.difficulty} requests ` +
      `(tier ${tiersServing(request.difficulty).join(" or ")})${model} is online; ${others}`,
    Code.Unavailable,
  );
}
