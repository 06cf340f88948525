// Division modes as requests name them, and the choice `auto` makes from a request's size, difficulty and the nodes
// online.
import { DivisionMode as ProtoDivisionMode } from "../../../gen/iris/v1/common_pb.ts";
import type { Difficulty, DivisionMode } from "../../../common/vocabulary.ts";

/** What a caller may ask for: a concrete mode, or auto (resolved before any node is asked). */
export const REQUESTED_DIVISION_MODES = ["single", "subtasks", "consensus", "context", "auto"] as const;
export type RequestedDivisionMode = (typeof REQUESTED_DIVISION_MODES)[number];

/**
 * A mode from its name as HTTP bodies and the CLI write it ("consensus", "SUBTASKS", "division_mode_context"),
 * or undefined for anything else (the caller answers with a 400 naming the field).
 */
export function parseDivisionMode(name: string): RequestedDivisionMode | undefined {
  const mode = name
    .trim()
    .toLowerCase()
    .replace(/^division_mode_/, "");
  if (mode === "" || mode === "unspecified") return "single";
  return (REQUESTED_DIVISION_MODES as readonly string[]).includes(mode) ? (mode as RequestedDivisionMode) : undefined;
}

export interface AutoFacts {
  /** Tokens of the whole conversation as one node would read it (counted at the capable nodes' rates). */
  conversationTokens: number;
  /** Whether one node reads the conversation within a chunk's budget (context.ts: fitsOneNode). */
  fitsOneNode: boolean;
  /** The request's difficulty, as a whole. */
  difficulty: Difficulty;
  /** Connected nodes that serve the request as a whole. */
  wholeNodes: number;
  /** Parts the rule-based planner finds (numbered items, several questions); 0 or 1 when it finds none. */
  ruleParts: number;
  /** Connected nodes that serve the hardest of those parts, each judged on its own; 0 without parts. */
  partNodes: number;
}

/**
 * auto's choice, in this order: a conversation longer than one node can read → context (nothing else can answer
 * it; its parts are judged on the request alone, not the document's length); independent parts that the nodes
 * online can serve → subtasks, when no online node serves the request as a whole, or when it is COMPLEX or ADVANCED
 * and two nodes can share the parts; anything else → single. So a request whose tier is not online is split when
 * its parts' tiers are; when neither is, single says so at once. auto never picks consensus: it triples the cost,
 * so it is for callers who ask for verification.
 */
export function chooseAutoMode(facts: AutoFacts): { mode: DivisionMode; reason: string } {
  if (!facts.fitsOneNode) {
    return { mode: "context", reason: `about ${facts.conversationTokens} tokens exceed what one node reads` };
  }
  if (facts.ruleParts >= 2 && facts.partNodes >= 1) {
    if (facts.wholeNodes === 0)
      return {
        mode: "subtasks",
        reason:
          `no node online serves ${facts.difficulty} requests; ${facts.partNodes} serve its ${facts.ruleParts} ` +
          `parts`,
      };
    if (facts.difficulty !== "SIMPLE" && facts.partNodes >= 2)
      return { mode: "subtasks", reason: `${facts.ruleParts} independent parts and ${facts.partNodes} capable nodes` };
  }
  return {
    mode: "single",
    reason: facts.wholeNodes > 0 ? "fits one node" : "no mode's parts are served by a node online",
  };
}

const fromProto: Record<ProtoDivisionMode, RequestedDivisionMode> = {
  [ProtoDivisionMode.UNSPECIFIED]: "single",
  [ProtoDivisionMode.SINGLE]: "single",
  [ProtoDivisionMode.SUBTASKS]: "subtasks",
  [ProtoDivisionMode.CONSENSUS]: "consensus",
  [ProtoDivisionMode.CONTEXT]: "context",
  [ProtoDivisionMode.AUTO]: "auto",
};
const toProto: Record<DivisionMode, ProtoDivisionMode> = {
  single: ProtoDivisionMode.SINGLE,
  subtasks: ProtoDivisionMode.SUBTASKS,
  consensus: ProtoDivisionMode.CONSENSUS,
  context: ProtoDivisionMode.CONTEXT,
};

/** ChatParams.division_mode as the orchestrator reads it (unspecified is single). */
export function divisionModeFromProto(mode: ProtoDivisionMode): RequestedDivisionMode {
  return fromProto[mode] ?? "single";
}

/** Accepted.division_mode for the mode in use (auto is always resolved by then; undefined is single). */
export function divisionModeToProto(mode: DivisionMode | undefined): ProtoDivisionMode {
  return toProto[mode ?? "single"];
}
