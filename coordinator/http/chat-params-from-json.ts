// The fields that both HTTP chat bodies share (`/v1/chat/completions`, `/api/chat/stream`), read from JSON into
// ChatParams and checked by ChatParams' own protovalidate rules, the ones InferenceService.Chat enforces: every
// entry point accepts the same requests, and the limits live in the .proto only.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { DIFFICULTIES, difficultyToProto } from "../../common/vocabulary.ts";
import { DivisionMode, type ChatMessageSchema } from "../../gen/iris/v1/common_pb.ts";
import { ChatParamsSchema, type ChatParams } from "../../gen/iris/v1/inference_pb.ts";
import { parseDivisionMode, REQUESTED_DIVISION_MODES, type RequestedDivisionMode } from "../tasks/division/mode.ts";
import { firstViolation } from "../validation.ts";
import { InvalidFieldError } from "./invalid-field-error.ts";

/** What a route read from its body that the shared fields do not cover. */
export interface JsonChatBody {
  /** The conversation: each route has its own roles and content shapes. */
  messages: MessageInitShape<typeof ChatMessageSchema>[];
  /** The body's key for ChatParams.max_tokens (OpenAI's newer `max_completion_tokens`, when the body used it). */
  maxTokensKey?: string;
  /** The SSE body's `account_key`, as sent (trimmed). */
  accountKey?: string;
  /** How the route's messages write a field's name (OpenAI's quote it: 'model'). */
  name?: (field: string) => string;
}

/** JSON clients write null for "not set" as often as they leave a field out. */
export const isUnset = (value: unknown): value is null | undefined => value === undefined || value === null;

export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

function fail(field: string, message: string): never {
  throw new InvalidFieldError(message, field);
}

/**
 * A count whose 0 means "the default" in ChatParams (max_tokens, consensus_nodes): over HTTP the default is a
 * missing field, so a 0 is refused rather than read as "unset". Values beyond uint32 are clamped, so that the
 * field's own rule refuses them in its words.
 */
function count(body: Record<string, unknown>, key: string, name: (field: string) => string): number {
  const value = body[key];
  if (isUnset(value)) return 0;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1)
    fail(key, `${name(key)} must be a positive integer (leave it out for the default)`);
  return Math.min(value, 0xffff_ffff);
}

/**
 * `body`'s model, max_tokens, temperature, difficulty, division_mode and consensus_nodes, with the route's
 * messages (and account key), as ChatParams that passed its protovalidate rules; else an InvalidFieldError naming
 * the body's field. Names are read case-insensitively (`"Complex"`); anything not a known name is refused.
 */
export function chatParamsFromJson(body: Record<string, unknown>, route: JsonChatBody): ChatParams {
  const name = route.name ?? ((field: string) => field);
  const { model, temperature, difficulty, division_mode: mode } = body;
  if (!isUnset(model) && typeof model !== "string") fail("model", `${name("model")} must be a string`);
  if (!isUnset(temperature) && typeof temperature !== "number")
    fail("temperature", `${name("temperature")} must be a number from 0 to 2`);
  const maxTokensKey = route.maxTokensKey ?? "max_tokens";
  const maxTokens = count(body, maxTokensKey, name);
  let difficultyHint;
  if (!isUnset(difficulty)) {
    const known = typeof difficulty === "string" ? DIFFICULTIES.find((d) => d === difficulty.toUpperCase()) : undefined;
    if (known === undefined) fail("difficulty", `${name("difficulty")} must be one of simple, complex, advanced`);
    difficultyHint = difficultyToProto[known];
  }
  let divisionMode: DivisionMode | undefined;
  if (!isUnset(mode)) {
    const parsed = typeof mode === "string" ? parseDivisionMode(mode) : undefined;
    if (parsed === undefined)
      fail("division_mode", `${name("division_mode")} must be one of ${REQUESTED_DIVISION_MODES.join(", ")}`);
    divisionMode = DivisionMode[parsed.toUpperCase() as Uppercase<RequestedDivisionMode>];
  }
  const consensusNodes = count(body, "consensus_nodes", name);
  if (consensusNodes !== 0 && divisionMode !== DivisionMode.CONSENSUS) {
    fail("consensus_nodes", `${name("consensus_nodes")} applies only with ${name("division_mode")} consensus`);
  }
  const params = create(ChatParamsSchema, {
    messages: route.messages,
    model: model ?? "",
    maxTokens,
    temperature: temperature ?? undefined,
    difficulty: difficultyHint,
    divisionMode,
    accountKey: route.accountKey,
    consensusNodes,
  });
  const violation = firstViolation(ChatParamsSchema, params);
  if (violation) {
    const field = violation.field === "max_tokens" ? maxTokensKey : violation.field;
    throw new InvalidFieldError(`${field}: ${violation.message}`, field);
  }
  return params;
}
