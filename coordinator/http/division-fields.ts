// The division-mode extension fields that the HTTP bodies share (SSE `POST /api/chat/stream` and the OpenAI API):
// `division_mode` ("single", "subtasks", "consensus", "context", "auto") and `consensus_nodes` (2–9).
import { parseDivisionMode, REQUESTED_DIVISION_MODES, type RequestedDivisionMode } from "../tasks/division/mode.ts";

/** The bounds of ChatParams.consensus_nodes in proto/iris/v1 (0 there means the configured default). */
export const MIN_CONSENSUS_NODES = 2;
export const MAX_CONSENSUS_NODES = 9;

export interface DivisionFields {
  divisionMode?: RequestedDivisionMode;
  consensusNodes?: number;
}

/**
 * Reads the two fields from a JSON body; `fail(field, message)` throws the endpoint's own error type.
 * null counts as unset, as JSON clients write it for "not set".
 */
export function readDivisionFields(
  body: Record<string, unknown>,
  fail: (field: string, message: string) => never,
  /** How the endpoint's messages write a field's name (OpenAI's quote it: 'division_mode'). */
  name: (field: string) => string = (field) => field,
): DivisionFields {
  const fields: DivisionFields = {};
  const { division_mode: mode, consensus_nodes: nodes } = body;
  if (mode !== undefined && mode !== null) {
    const parsed = typeof mode === "string" ? parseDivisionMode(mode) : undefined;
    if (parsed === undefined) fail("division_mode", `${name("division_mode")} must be one of ${REQUESTED_DIVISION_MODES.join(", ")}`);
    fields.divisionMode = parsed;
  }
  if (nodes !== undefined && nodes !== null) {
    if (typeof nodes !== "number" || !Number.isInteger(nodes) || nodes < MIN_CONSENSUS_NODES || nodes > MAX_CONSENSUS_NODES) {
      fail("consensus_nodes", `${name("consensus_nodes")} must be an integer from ${MIN_CONSENSUS_NODES} to ${MAX_CONSENSUS_NODES}`);
    }
    if (fields.divisionMode !== "consensus") fail("consensus_nodes", `${name("consensus_nodes")} applies only with ${name("division_mode")} consensus`);
    fields.consensusNodes = nodes;
  }
  return fields;
}
