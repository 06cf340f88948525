// Division modes as requests name them, and the choice `auto` makes from a request's size and difficulty.
import { DivisionMode as ProtoDivisionMode } from "../../../gen/iris/v1/common_pb.ts";
import type { Difficulty, DivisionMode } from "../../db/schema.ts";

/** What a caller may ask for: a concrete mode, or auto (resolved before any node is asked). */
export const REQUESTED_DIVISION_MODES = ["single", "subtasks", "consensus", "context", "auto"] as const;
export type RequestedDivisionMode = (typeof REQUESTED_DIVISION_MODES)[number];

/**
 * A mode from its name as HTTP bodies and the CLI write it ("consensus", "SUBTASKS", "division_mode_context"),
 * or undefined for anything else (the caller answers with a 400 naming the field).
 */
export function parseDivisionMode(name: string): RequestedDivisionMode | undefined {
  const mode = name.trim().toLowerCase().replace(/^division_mode_/, "");
  if (mode === "" || mode === "unspecified") return "single";
  return (REQUESTED_DIVISION_MODES as readonly string[]).includes(mode) ? (mode as RequestedDivisionMode) : undefined;
}

export interface AutoFacts {
  /** Estimated tokens of the request's longest message (the document, if there is one). */
  longestMessageTokens: number;
  /** The most tokens one node can read at once, for this request (see context.ts). */
  contextBudgetTokens: number;
  difficulty: Difficulty;
  /** Parts the rule-based planner finds (numbered items, several questions); 0 or 1 when it finds none. */
  ruleParts: number;
  /** Connected nodes that serve the difficulty now. */
  capableNodes: number;
}

/**
 * auto's choice, in this order: a message longer than one node can read → context (nothing else can answer
 * it); a COMPLEX or ADVANCED request that lists independent parts, with at least two capable nodes →
 * subtasks; anything else → single. auto never picks consensus: it triples the cost, so it is for callers
 * who ask for verification.
 */
export function chooseAutoMode(facts: AutoFacts): { mode: DivisionMode; reason: string } {
  if (facts.longestMessageTokens > facts.contextBudgetTokens) {
    return { mode: "context", reason: `about ${facts.longestMessageTokens} tokens exceed one node's budget of ${facts.contextBudgetTokens}` };
  }
  if (facts.difficulty !== "SIMPLE" && facts.ruleParts >= 2 && facts.capableNodes >= 2) {
    return { mode: "subtasks", reason: `${facts.ruleParts} independent parts and ${facts.capableNodes} capable nodes` };
  }
  return { mode: "single", reason: "fits one node" };
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
