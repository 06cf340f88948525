// The node link, coordinator side: sends a classify assign to an idle node and waits for that node's classify
// result. Transport-free: the NodeService stream wiring gives it `send` and feeds it the results.
import { randomUUID } from "node:crypto";
import { Difficulty as DifficultyEnum } from "../../../gen/iris/v1/common_pb.ts";
import { renderForClassification } from "../../../common/classify-prompt.ts";
import type { Difficulty, NodeTier } from "../../db/schema.ts";
import type { Classifier } from "../classifier.ts";
import { ClassifierBudgetExceeded } from "./chain.ts";

export interface NodeClassifierOptions<Node extends { id: string }> {
  /**
   * An idle node to ask, or none; `skip` holds the nodes not to ask: those already judging a prompt for this
   * link and those resting after a missed deadline.
   */
  pickIdleNode: (skip: ReadonlySet<string>) => Node | undefined;
  /** Queues a classify assign for the request on the node's stream (sealing the prompt); false when the stream is closed. */
  send: (node: Node, request: ClassifyRequest) => boolean;
  /** How long the node has; also sent as the assign's deadline. */
  budgetMs: number;
  /**
   * How long a node that missed a deadline or could not judge is not asked again (default 5 minutes): an agent that doesn't
   * answer classify assigns (an older version, a stuck backend) must not cost every request its budget.
   */
  restAfterTimeoutMs?: number;
  now?: () => number;
  newId?: () => string;
}

/** What a classify assign carries, before the stream wiring seals the prompt for the node. */
export interface ClassifyRequest {
  classifyId: string;
  /** The conversation fenced for classification (renderForClassification). */
  prompt: string;
  deadlineUnixMs: bigint;
}

export interface NodeClassifier extends Classifier {
  /**
   * A classify result arrived on `fromNodeId`'s stream. Accepted only from the node the id was sent to and only
   * while the link waits; returns whether it was (unknown, late and foreign results are ignored).
   */
  resolveClassifyResult(classifyId: string, difficulty: DifficultyEnum | Difficulty, fromNodeId: string): boolean;
  /** The node's stream ended: its pending classifications fail now instead of at their deadline. */
  nodeGone(nodeId: string): void;
  readonly pending: number;
}

interface Pending {
  nodeId: string;
  resolve(difficulty: Difficulty): void;
  reject(error: Error): void;
}

const fromEnum: Partial<Record<DifficultyEnum, Difficulty>> = {
  [DifficultyEnum.SIMPLE]: "SIMPLE",
  [DifficultyEnum.COMPLEX]: "COMPLEX",
  [DifficultyEnum.ADVANCED]: "ADVANCED",
};
const names = new Set<string>(["SIMPLE", "COMPLEX", "ADVANCED"]);

export function createNodeClassifier<Node extends { id: string }>(options: NodeClassifierOptions<Node>): NodeClassifier {
  const now = options.now ?? Date.now;
  const newId = options.newId ?? randomUUID;
  const restMs = options.restAfterTimeoutMs ?? 5 * 60_000;
  const pending = new Map<string, Pending>();
  const restingUntil = new Map<string, number>();

  /** A node that missed a deadline or could not judge is not asked again for a while. */
  function rest(nodeId: string): void {
    restingUntil.set(nodeId, now() + restMs);
  }

  function skip(): Set<string> {
    const at = now();
    for (const [nodeId, until] of restingUntil) if (until <= at) restingUntil.delete(nodeId);
    return new Set([...restingUntil.keys(), ...[...pending.values()].map((entry) => entry.nodeId)]);
  }

  return {
    get pending() {
      return pending.size;
    },

    classify(input) {
      return new Promise((resolve, reject) => {
        if (input.signal?.aborted) return reject(new Error("node classification aborted before it started"));
        const node = options.pickIdleNode(skip());
        if (!node) return reject(new Error("no idle node to classify with"));
        const classifyId = newId();
        const settle = () => {
          clearTimeout(timer);
          input.signal?.removeEventListener("abort", onAbort);
          pending.delete(classifyId);
        };
        const onAbort = () => {
          settle();
          // the chain gave up on the link at the same budget: the node missed its deadline, whichever timer fired first
          if (input.signal?.reason instanceof ClassifierBudgetExceeded) rest(node.id);
          reject(new Error(`node ${node.id} classification ${classifyId} aborted`));
        };
        const timer = setTimeout(() => {
          settle();
          rest(node.id);
          reject(new Error(`node ${node.id} did not classify within ${options.budgetMs} ms`));
        }, options.budgetMs);
        input.signal?.addEventListener("abort", onAbort, { once: true });
        pending.set(classifyId, {
          nodeId: node.id,
          resolve: (difficulty) => {
            settle();
            resolve({ difficulty, classifier: "node" });
          },
          reject: (error) => {
            settle();
            reject(error);
          },
        });
        const request = { classifyId, prompt: renderForClassification(input.messages), deadlineUnixMs: BigInt(now() + options.budgetMs) };
        if (!options.send(node, request)) pending.get(classifyId)?.reject(new Error(`node ${node.id}'s stream is closed`));
      });
    },

    resolveClassifyResult(classifyId, difficulty, fromNodeId) {
      const entry = pending.get(classifyId);
      // a node may answer only what it was asked: another node's id is not its to settle
      if (!entry || entry.nodeId !== fromNodeId) return false;
      const name = typeof difficulty === "number" ? fromEnum[difficulty] : names.has(difficulty) ? difficulty : undefined;
      if (name) {
        entry.resolve(name);
      } else {
        // DIFFICULTY_UNSPECIFIED: its model answered no difficulty; it will likely not next time either
        rest(fromNodeId);
        entry.reject(new Error(`node ${fromNodeId} could not judge the prompt`));
      }
      return true;
    },

    nodeGone(nodeId) {
      for (const entry of [...pending.values()]) {
        if (entry.nodeId === nodeId) entry.reject(new Error(`node ${nodeId} disconnected while classifying`));
      }
      restingUntil.delete(nodeId); // a reconnecting agent (perhaps upgraded) gets a fresh chance
    },
  };
}

/** What pickIdleClassifierNode reads of a node; LiveNode has all of it. */
export interface ClassifierCandidate {
  id: string;
  tier: NodeTier;
  connected: boolean;
  paused: boolean;
  tasks: { size: number };
  capabilities: { tokensPerSecond: number };
}

const tierRank: Record<NodeTier, number> = { BASIC: 0, MID: 1, PRO: 2 };

/**
 * The node to ask: connected, not paused, running no user task and not in `skip`. Among those the
 * highest tier (a bigger model judges better), then the fastest (the answer is a few tokens; prompt reading
 * dominates).
 */
export function pickIdleClassifierNode<Node extends ClassifierCandidate>(
  nodes: Iterable<Node>,
  skip: ReadonlySet<string>,
): Node | undefined {
  let best: Node | undefined;
  for (const node of nodes) {
    if (!node.connected || node.paused || node.tasks.size > 0 || skip.has(node.id)) continue;
    if (
      !best ||
      tierRank[node.tier] > tierRank[best.tier] ||
      (tierRank[node.tier] === tierRank[best.tier] && node.capabilities.tokensPerSecond > best.capabilities.tokensPerSecond)
    ) {
      best = node;
    }
  }
  return best;
}
