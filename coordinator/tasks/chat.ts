// A chat request as every entry point hands it to the orchestrator (ChatInput), what the orchestrator streams
// back (ChatEvent), and the done event built from a finished part.
import type { ChatRole, Difficulty, DivisionMode, NodeTier } from "../../common/vocabulary.ts";
import type { RequestedDivisionMode } from "./division/mode.ts";
import type { PartResult } from "./part-spec.ts";

export interface ChatInput {
  messages: { role: ChatRole; content: string }[];
  model?: string;
  /** 0 or undefined: the configured default. */
  maxTokens?: number;
  temperature?: number;
  difficultyHint?: Difficulty;
  /** The caller may set any difficulty (an admin); others may only raise it. */
  trustedHint?: boolean;
  /** How to spread the request over nodes; undefined means single. */
  divisionMode?: RequestedDivisionMode;
  /** Consensus: how many nodes answer; 0 or undefined means the configured default. */
  consensusNodes?: number;
  accountId?: string;
  clientAddress?: string;
  /** Aborts when the client goes away: the node is told to cancel. */
  signal: AbortSignal;
  /** False: the answer is taken whole, so a single node sends it in its result (no chunks); undefined means true. */
  streaming?: boolean;
}

export type ChatEvent =
  | { type: "queued"; position: number; maxWaitMs: number; estimatedWaitMs?: number }
  | {
      type: "accepted";
      taskId: string;
      difficulty: Difficulty;
      tier: NodeTier;
      nodeId: string;
      model: string;
      classifier: string;
      /** The mode in use (auto resolved); undefined means single. */
      divisionMode?: DivisionMode;
    }
  | { type: "token"; text: string }
  | {
      type: "done";
      taskId: string;
      promptTokens: number;
      completionTokens: number;
      ttftMs: number;
      totalMs: number;
      tokensPerSecond: number;
      nodeId: string;
      nodeIds: string[];
      finishReason: string;
      /** Consensus: a majority of the nodes agreed. */
      verified?: boolean;
    };

/** The done event of an answer that one part produced. */
export function doneEvent(
  taskId: string,
  started: number,
  result: PartResult,
  extra: { nodeIds?: string[]; verified?: boolean } = {},
): Extract<ChatEvent, { type: "done" }> {
  const finished = result.completedAt;
  const generationMs = result.firstTokenAt !== undefined ? finished - result.firstTokenAt : 0;
  return {
    type: "done",
    taskId,
    promptTokens: result.promptTokens,
    completionTokens: result.completionTokens,
    ttftMs: (result.firstTokenAt ?? finished) - started,
    totalMs: finished - started,
    tokensPerSecond: generationMs > 0 ? (result.completionTokens * 1000) / generationMs : 0,
    nodeId: result.node.id,
    nodeIds: extra.nodeIds ?? result.nodeIds,
    finishReason: result.finishReason,
    ...(extra.verified !== undefined ? { verified: extra.verified } : {}),
  };
}
