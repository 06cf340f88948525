// What a part of a task is (PartSpec), what running it yields (PartEvent) and what it ends with (PartResult): the
// contract between the part runner (part-runner.ts) and whoever runs parts (the orchestrator, the division modes,
// spot checks and canaries).
import type { JsonValue } from "../db/schema.ts";
import type { Difficulty, DivisionMode } from "../../common/vocabulary.ts";
import type { LiveNode } from "../nodes/registry.ts";
import type { TaskOutcome } from "../reputation/outcomes.ts";
import type { ContextNeed } from "./context-fit.ts";
import type { ModelIdentity } from "./router.ts";

export type ChatMessageInput = { role: "system" | "user" | "assistant"; content: string };

export interface PartSpec {
  taskId: string;
  /** The divided task this part belongs to (its row's parent_id); none for a single-mode task. */
  parentId?: string;
  /** The row's division_mode: the mode of the request this part serves. */
  mode: DivisionMode;
  difficulty: Difficulty;
  classifier: string;
  messages: ChatMessageInput[];
  maxTokens: number;
  temperature?: number;
  /** A fixed sampling seed (deterministic runs: consensus, spot checks). */
  seed?: number;
  /** A normalised model hint (router.normalizeModelHint); undefined means any model. */
  model?: string;
  sameModel?: ModelIdentity;
  reputationAbove?: number;
  /** Only nodes whose context window holds this (the whole conversation on one node); undefined: any window. */
  context?: ContextNeed;
  /** False: the node sends the answer in its result, no chunks (a caller that takes it whole); undefined: true. */
  streaming?: boolean;
  /** Nodes not to use; nodes that fail this part are added to it. */
  exclude?: Set<string>;
  /** Only this node may take the part (a spot check's checker, a canary's node). */
  only?: string;
  /** Siblings sharing `exclude` run on different nodes: every node this part gets is added to it at once. */
  distinct?: boolean;
  accountId?: string;
  clientAddress?: string;
  signal: AbortSignal;
  /** When the part's clock starts: its deadline and time to first token count from here. */
  started: number;
  /**
   * When the node's completion counts for its reputation: "now" when the part completes, "later" when the
   * caller has judged the answer (consensus: only the majority is rewarded), "never" for checks that are
   * judged only on a mismatch (spot checks, canaries). Timeouts and invalid chunks always count at once.
   */
  reward: "now" | "later" | "never";
  /**
   * "queue": no capable node free → wait in the queue (single-mode behaviour, even with no node online);
   * "while-possible": wait only while some connected node could take it, else fail at once;
   * "never": no free node now → fail at once (spot checks and canaries are opportunistic).
   */
  wait: "queue" | "while-possible" | "never";
}

export type PartEvent =
  | { type: "queued"; position: number; maxWaitMs: number; estimatedWaitMs?: number }
  | { type: "assigned"; node: LiveNode; attempt: number }
  | { type: "token"; text: string };

export interface PartResult {
  taskId: string;
  text: string;
  /** The pieces as the nodes sent them, in order (consensus replays the agreed answer's pieces). */
  pieces: string[];
  promptTokens: number;
  completionTokens: number;
  finishReason: string;
  /** The node that finished the part. */
  node: LiveNode;
  nodeIds: string[];
  /** undefined when no token came (an empty answer). */
  firstTokenAt: number | undefined;
  completedAt: number;
  /** Applies a reputation outcome to the node that finished the part, for this part's task. */
  judge(outcome: TaskOutcome, evidence?: Record<string, JsonValue>): void;
}
