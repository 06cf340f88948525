// The models the network serves right now, aggregated from the live nodes (ListModels and GET /v1/models).
import type { NodeTier } from "../../common/vocabulary.ts";
import type { LiveNode } from "../nodes/registry.ts";

export interface ServedModel {
  name: string;
  /** Connected nodes serving it (busy or not). */
  nodeCount: number;
  /** The highest tier among those nodes: the hardest difficulty the model can be asked for. */
  bestTier: NodeTier;
  parameterCount: number;
  quantization: string;
}

const tierRank: Record<NodeTier, number> = { BASIC: 0, MID: 1, PRO: 2 };

/** One entry per model name, sorted by name; size and quantization from the first node seen. */
export function servedModels(nodes: Iterable<LiveNode>): ServedModel[] {
  const models = new Map<string, ServedModel>();
  for (const node of nodes) {
    const c = node.capabilities;
    const entry = models.get(c.modelName);
    if (entry) {
      entry.nodeCount++;
      if (tierRank[node.tier] > tierRank[entry.bestTier]) entry.bestTier = node.tier;
    } else {
      models.set(c.modelName, {
        name: c.modelName,
        nodeCount: 1,
        bestTier: node.tier,
        parameterCount: c.parameterCount,
        quantization: c.quantization,
      });
    }
  }
  return [...models.values()].sort((a, b) => a.name.localeCompare(b.name));
}
