// The node link, coordinator side: asks an idle node that has answered classify before, for no longer than its own
// record says it needs, and probes nodes without a record off the request path (the local model answers that request at
// once). Transport-free: the NodeService stream wiring gives it `send` and feeds it the results.
import { randomUUID } from "node:crypto";
import type { Difficulty as DifficultyEnum } from "../../../gen/iris/v1/common_pb.ts";
import { renderForNode } from "../../../common/classify-prompt.ts";
import type { Difficulty, NodeTier } from "../../../common/vocabulary.ts";
import { type Classification, type Classifier, type ClassifierInput, type Declined, isDeclined } from "./classifier.ts";
import { ClassifierBudgetExceeded, ClassifierLinkDeclined } from "./chain.ts";
import { DEFAULT_WAIT, waitFor, withAnswer, type ClassifyRecord, type WaitPolicy } from "./node-record.ts";
import { difficultyFromProto, NODE_TIERS } from "../../../common/vocabulary.ts";

export interface NodeClassifierOptions<Node extends { id: string }> {
  /**
   * The idle node to ask: the best of those `kindOf` calls "known" (a record says how they answer), or, only when there
   * is none, the best of those it calls "stranger"; it leaves out the others (resting, classifying).
   */
  pickIdleNodes: (kindOf: (nodeId: string) => IdleKind | undefined) => Partial<Record<IdleKind, Node>>;
  /**
   * Queues a classify assign for the request on the node's stream (sealing the prompt); false when the stream is
   * closed.
   */
  send: (node: Node, request: ClassifyRequest) => boolean;
  /** The most a request waits for a node, and the deadline every assign carries (a probe's too). */
  budgetMs: number;
  /** How long a request waits for a node with a record, from its p90 latency (default 2 × p90 + 50 ms). */
  wait?: Omit<WaitPolicy, "budgetMs">;
  /**
   * How long a node that missed a deadline or could not judge is not asked again (default 5 minutes); it also loses
   * its record, so after the rest it is only probed until it answers again.
   */
  restAfterTimeoutMs?: number;
  now?: () => number;
  newId?: () => string;
}

/** What a classify assign carries, before the stream wiring seals the prompt for the node. */
export interface ClassifyRequest {
  classifyId: string;
  /** The conversation fenced for classification, cut for a small model's context (renderForNode). */
  prompt: string;
  deadlineUnixMs: bigint;
}

export interface NodeClassifier extends Classifier {
  /** Declines at once (a value, not a rejection) when no node can be asked; else asks one, as classify does. */
  begin(input: ClassifierInput): Promise<Classification> | Declined;
  /**
   * A classify result arrived on `fromNodeId`'s stream. Accepted only from the node the id was sent to and only before
   * the assign's deadline, whether or not a request still waits (a late answer still teaches the node's latency);
   * returns whether it was (unknown, expired and foreign results are ignored).
   */
  resolveClassifyResult(classifyId: string, difficulty: DifficultyEnum | Difficulty, fromNodeId: string): boolean;
  /** The node's stream ended: its assign fails now instead of at its deadline, and its record is forgotten. */
  nodeGone(nodeId: string): void;
  /**
   * Assigns out (waited on, probes, and those whose request stopped waiting), until answered or past their deadline.
   */
  readonly pending: number;
  /** How long a request would wait for the node now; undefined when it has no record of answering. */
  waitMs(nodeId: string): number | undefined;
}

/** The request waiting on an assign; settles once, and the assign outlives it (the node is still working). */
interface Waiter {
  answer(difficulty: Difficulty): void;
  fail(error: Error): void;
}

interface Assign {
  nodeId: string;
  sentAt: number;
  waiter?: Waiter;
  deadline: NodeJS.Timeout;
}

const names = new Set<string>(["SIMPLE", "COMPLEX", "ADVANCED"]);

export function createNodeClassifier<Node extends { id: string }>(
  options: NodeClassifierOptions<Node>,
): NodeClassifier {
  const now = options.now ?? Date.now;
  const newId = options.newId ?? randomUUID;
  const restMs = options.restAfterTimeoutMs ?? 5 * 60_000;
  const policy: WaitPolicy = { ...DEFAULT_WAIT, ...options.wait, budgetMs: options.budgetMs };
  const assigns = new Map<string, Assign>();
  /** Node id → its assign's id; a node gets one assign at a time. */
  const assigned = new Map<string, string>();
  const records = new Map<string, ClassifyRecord>();
  const restingUntil = new Map<string, number>();

  function available(nodeId: string): boolean {
    if (assigned.has(nodeId)) return false;
    const until = restingUntil.get(nodeId);
    if (until === undefined) return true;
    if (until > now()) return false;
    restingUntil.delete(nodeId);
    return true;
  }

  /** A node that missed a deadline or could not judge rests, and must prove itself again by a probe. */
  function rest(nodeId: string): void {
    records.delete(nodeId);
    restingUntil.set(nodeId, now() + restMs);
  }

  function settle(classifyId: string): Assign | undefined {
    const entry = assigns.get(classifyId);
    if (!entry) return undefined;
    clearTimeout(entry.deadline);
    assigns.delete(classifyId);
    assigned.delete(entry.nodeId);
    return entry;
  }

  /** Sends the assign; with no waiter it is a probe. The assign lives until answered or its deadline. */
  function assign(node: Node, input: ClassifierInput, waiter?: Waiter): void {
    const classifyId = newId();
    const sentAt = now();
    const deadline = setTimeout(() => {
      const entry = settle(classifyId);
      if (!entry) return;
      rest(entry.nodeId);
      entry.waiter?.fail(new Error(`node ${entry.nodeId} did not classify within ${policy.budgetMs} ms`));
    }, policy.budgetMs);
    assigns.set(classifyId, { nodeId: node.id, sentAt, waiter, deadline });
    assigned.set(node.id, classifyId);
    const request = {
      classifyId,
      prompt: renderForNode(input.messages),
      deadlineUnixMs: BigInt(sentAt + policy.budgetMs),
    };
    if (!options.send(node, request)) {
      settle(classifyId);
      waiter?.fail(new Error(`node ${node.id}'s stream is closed`));
    }
  }

  /** Waits on a node with a record for at most `waitMs`; the assign itself keeps the full budget. */
  function ask(node: Node, input: ClassifierInput, waitMs: number): Promise<Classification> {
    return new Promise((resolve, reject) => {
      const onAbort = () => waiter.fail(new Error(`node ${node.id} classification aborted`));
      // at the full budget the assign's own deadline ends the wait (and rests the node)
      const timer =
        waitMs < policy.budgetMs
          ? setTimeout(() => waiter.fail(new ClassifierBudgetExceeded(`node ${node.id}`, waitMs)), waitMs)
          : undefined;
      let settled = false;
      const finish = () => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        input.signal?.removeEventListener("abort", onAbort);
        return true;
      };
      const waiter: Waiter = {
        answer(difficulty) {
          if (finish()) resolve({ difficulty, classifier: "node" });
        },
        fail(error) {
          if (finish()) reject(error);
        },
      };
      input.signal?.addEventListener("abort", onAbort, { once: true });
      assign(node, input, waiter);
    });
  }

  function begin(input: ClassifierInput): Promise<Classification> | Declined {
    if (input.signal?.aborted) throw new Error("node classification aborted before it started");
    const { known: judge, stranger } = options.pickIdleNodes((id) =>
      available(id) ? (records.has(id) ? "known" : "stranger") : undefined,
    );
    if (judge) return ask(judge, input, waitFor(records.get(judge.id), policy)!);
    // nobody known to judge: the local model answers this request now; a stranger may earn a record on its prompt
    // meanwhile
    if (stranger) assign(stranger, input);
    return {
      declined: stranger ? `no idle node known to judge; probing ${stranger.id}` : "no idle node known to judge",
    };
  }

  return {
    get pending() {
      return assigns.size;
    },

    waitMs(nodeId) {
      return waitFor(records.get(nodeId), policy);
    },

    begin,

    async classify(input) {
      const started = begin(input);
      if (isDeclined(started)) throw new ClassifierLinkDeclined(started.declined);
      return started;
    },

    resolveClassifyResult(classifyId, difficulty, fromNodeId) {
      // a node may answer only what it was asked: another node's id is not its to settle
      if (assigns.get(classifyId)?.nodeId !== fromNodeId) return false;
      const entry = settle(classifyId)!;
      const name =
        typeof difficulty === "number"
          ? difficultyFromProto(difficulty)
          : names.has(difficulty)
            ? difficulty
            : undefined;
      if (name) {
        records.set(fromNodeId, withAnswer(records.get(fromNodeId), now() - entry.sentAt));
        entry.waiter?.answer(name);
      } else {
        // DIFFICULTY_UNSPECIFIED: its model answered no difficulty; it will likely not next time either
        rest(fromNodeId);
        entry.waiter?.fail(new Error(`node ${fromNodeId} could not judge the prompt`));
      }
      return true;
    },

    nodeGone(nodeId) {
      const classifyId = assigned.get(nodeId);
      if (classifyId !== undefined)
        settle(classifyId)?.waiter?.fail(new Error(`node ${nodeId} disconnected while classifying`));
      // a reconnecting agent (perhaps upgraded) starts afresh: probed, then waited on by what it shows
      records.delete(nodeId);
      restingUntil.delete(nodeId);
    },
  };
}

/** Whether the node link knows how a node answers classify (it has a record of it) or not yet. */
export type IdleKind = "known" | "stranger";

/** What pickIdleClassifierNodes reads of a node; LiveNode has all of it. */
export interface ClassifierCandidate {
  id: string;
  tier: NodeTier;
  connected: boolean;
  paused: boolean;
  tasks: { size: number };
  capabilities: { tokensPerSecond: number };
}

/** The tiers, the highest (a bigger model judges better) first. */
const TIERS_HIGHEST_FIRST: readonly NodeTier[] = [...NODE_TIERS].reverse();

/**
 * The node to ask: the best idle node `kindOf` calls "known" (connected, not paused, running no user task): the highest
 * tier (a bigger model judges better), then the fastest (the answer is a few tokens; prompt reading dominates). Only
 * when there is none, the best "stranger" by the same order, to probe. `idleNodes`: the registry's idle nodes of a tier
 * (NodeRegistry.idleNodes), lists each sorted fastest first, so a list is read up to its first known node: an idle
 * network of 10,000 known nodes costs a request a few nodes, where reading them all cost ~0.23 ms.
 */
export function pickIdleClassifierNodes<Node extends ClassifierCandidate>(
  idleNodes: (tier: NodeTier) => readonly (readonly Node[])[],
  kindOf: (nodeId: string) => IdleKind | undefined,
): Partial<Record<IdleKind, Node>> {
  let stranger: Node | undefined;
  for (const tier of TIERS_HIGHEST_FIRST) {
    let known: Node | undefined;
    for (const list of idleNodes(tier)) {
      let strangerHere = false;
      for (const node of list) {
        if (!node.connected || node.paused || node.tasks.size > 0) continue;
        const kind = kindOf(node.id);
        if (kind === "known") {
          if (!known || faster(node, known)) known = node;
          break; // the rest of the list is slower
        }
        if (kind !== "stranger" || strangerHere) continue;
        strangerHere = true;
        // a higher tier's stranger was found first: only one of this tier that is faster replaces it
        if (!stranger || (stranger.tier === node.tier && faster(node, stranger))) stranger = node;
      }
    }
    if (known) return { known };
  }
  return stranger ? { stranger } : {};
}

const faster = (a: ClassifierCandidate, b: ClassifierCandidate) =>
  a.capabilities.tokensPerSecond > b.capabilities.tokensPerSecond;
