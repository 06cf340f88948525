// Who checks an answer, and who was wrong when two answers differ (docs/concepts/division.md). Any
// other node serving the same model can check any node: reputation only orders the candidates, so the most trusted
// node is checked as often as the newest. Pure rules, table-tested in checkers.test.ts.
import type { Difficulty } from "../../common/vocabulary.ts";
import type { LiveNode } from "../nodes/registry.ts";
import { eligible, type ModelIdentity, type RouteRequest } from "./router.ts";

export interface CheckerRequest {
  /** The model and quantization the answer came from: only nodes serving exactly that can reproduce it. */
  model: ModelIdentity;
  difficulty: Difficulty;
  /** The nodes whose answers are being compared: never their own checker, and their accounts come last. */
  avoid: readonly LiveNode[];
  /** What else the task asks of a node (its context window, say), as the router takes it. */
  constraints?: Partial<RouteRequest>;
}

/** The route a checker must fit: the task's constraints, the same model, any reputation, none of the avoided nodes. */
function checkerRoute(request: CheckerRequest): RouteRequest {
  const exclude = new Set(request.avoid.map((node) => node.id));
  return {
    ...request.constraints,
    difficulty: request.difficulty,
    model: undefined,
    exclude,
    sameModel: request.model,
    reputationAbove: undefined,
  };
}

/** Whether some connected node could check, free or not: only then is a check worth waiting for. */
export function anyChecker(request: CheckerRequest, nodes: Iterable<LiveNode>): boolean {
  const route = checkerRoute(request);
  for (const node of nodes) if (node.connected && eligible(node, route)) return true;
  return false;
}

/** The candidate a check prefers; positive when `a` is better than `b`, 0 for equals. */
function preference(a: LiveNode, b: LiveNode, avoidAccounts: ReadonlySet<string>): number {
  // another operator's node first: a node of the same account proves little about its sibling
  const aForeign = avoidAccounts.has(a.accountId) ? 0 : 1;
  const bForeign = avoidAccounts.has(b.accountId) ? 0 : 1;
  if (aForeign !== bForeign) return aForeign - bForeign;
  // then the better record (a tie-breaker, never a gate), then an idle node over a busy one
  if (a.reputation !== b.reputation) return a.reputation - b.reputation;
  return (a.tasks.size === 0 ? 1 : 0) - (b.tasks.size === 0 ? 1 : 0);
}

/**
 * A free, unsuspended node other than the avoided ones that serves the same model and quantization and the
 * difficulty; undefined when none is free now. Equals are drawn at random, so the checks of a fresh network (every
 * node at 100) spread over all its nodes instead of landing on one.
 */
export function chooseChecker(
  request: CheckerRequest,
  nodes: Iterable<LiveNode>,
  random: () => number,
): LiveNode | undefined {
  const avoidAccounts = new Set(request.avoid.map((node) => node.accountId));
  const route = checkerRoute(request);
  let best: LiveNode | undefined;
  let ties = 0;
  for (const node of nodes) {
    if (!node.connected || node.freeSlots <= 0 || !eligible(node, route)) continue;
    const order = best ? preference(node, best, avoidAccounts) : 1;
    if (order > 0) {
      best = node;
      ties = 1;
    } else if (order === 0 && random() * ++ties < 1) {
      best = node; // reservoir sampling: each of the k equals wins with 1/k
    }
  }
  return best;
}

/** The two answers that differ, by their nodes' reputations; the referee's agreement with each when one answered. */
export interface Disagreement {
  answeredReputation: number;
  checkerReputation: number;
  referee?: { agreesWithAnswer: boolean; agreesWithChecker: boolean };
}

/**
 * Which answer is the mismatch: a referee (a third node of the same model) decides by majority, and may find either
 * wrong. Without one only a more reputable checker is believed, against the checked answer; a checker is never
 * penalised on reputation alone (the node it checked has just been rewarded for the very answer in doubt). A referee
 * agreeing with both or neither judges nobody.
 */
export function wrongAnswer(d: Disagreement): "answer" | "check" | undefined {
  if (d.referee) {
    const { agreesWithAnswer, agreesWithChecker } = d.referee;
    if (agreesWithAnswer === agreesWithChecker) return undefined;
    return agreesWithChecker ? "answer" : "check";
  }
  return d.checkerReputation > d.answeredReputation ? "answer" : undefined;
}
