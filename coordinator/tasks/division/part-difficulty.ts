// A part of a divided request is judged on its own: "Define TCP." is SIMPLE even when the list it came from is
// ADVANCED as a whole, and a question about a long document is not COMPLEX because the document is long.
import type { Difficulty } from "../../../common/vocabulary.ts";
import type { LiveNode, NodeRegistry } from "../../nodes/registry.ts";
import { capableNodes } from "../capable-nodes.ts";
import { classifyLocally } from "../classify/model.ts";
import type { DividedTask } from "./divided-task.ts";
import { difficultyRank } from "../../../common/vocabulary.ts";

/**
 * The difficulty of a part whose prompt is `text`: the local classifier's verdict on the part alone, never above
 * the request's (the chain judged the whole, perhaps with a better classifier). A caller's hint still holds: an
 * admin's hint is every part's difficulty, anyone else's raises every part to at least the hint.
 */
export function partDifficulty(task: DividedTask, text: string): Difficulty {
  const hint = task.input.difficultyHint;
  if (hint && task.input.trustedHint) return hint;
  const own = classifyLocally({ messages: [{ role: "user", content: text }] });
  const capped = difficultyRank(own) < difficultyRank(task.difficulty) ? own : task.difficulty;
  return hint && difficultyRank(hint) > difficultyRank(capped) ? hint : capped;
}

export function hardest(difficulties: readonly Difficulty[]): Difficulty {
  return difficulties.reduce<Difficulty>((max, d) => (difficultyRank(d) > difficultyRank(max) ? d : max), "SIMPLE");
}

/**
 * The connected nodes that could take a part of this difficulty (busy ones included), read from the registry's nodes
 * of the serving tiers or of the model.
 */
export function nodesServing(
  registry: Pick<NodeRegistry, "nodesServing">,
  difficulty: Difficulty,
  model: string | undefined,
): LiveNode[] {
  return capableNodes(registry.nodesServing(difficulty, model), { difficulty, model, exclude: new Set() });
}

/** How many parts the nodes can run at once: their slots, one at least. */
export function parallelism(nodes: readonly LiveNode[]): number {
  return Math.max(
    1,
    nodes.reduce((sum, node) => sum + Math.max(1, node.capabilities.maxConcurrentTasks), 0),
  );
}
