// Reads a `POST /api/chat/stream` JSON body into the orchestrator's input, naming the field of anything wrong.
import type { Difficulty } from "../../common/vocabulary.ts";
import type { ChatInput } from "../tasks/chat.ts";
import { readDivisionFields } from "./division-fields.ts";

/** A body the endpoint refuses; `field` is the path of the offending value (`messages[0].content`), null for the body. */
export class InvalidChatBodyError extends Error {
  constructor(
    message: string,
    readonly field: string | null,
  ) {
    super(message);
    this.name = "InvalidChatBodyError";
  }
}

export interface ChatStreamRequest {
  input: Omit<ChatInput, "signal" | "accountId" | "clientAddress">;
  /** As sent (spaces allowed); checked against the accounts by the route. */
  accountKey?: string;
}

// The bounds of ChatParams in proto/iris/v1, so every entry point accepts the same requests.
const MAX_MESSAGES = 1024;
const MAX_CONTENT_CHARS = 1_048_576;
const MAX_MODEL_CHARS = 256;
const MAX_TOKENS = 131_072;
const FIELDS = new Set(["messages", "account_key", "max_tokens", "model", "difficulty", "temperature", "division_mode", "consensus_nodes"]);
const roles = new Set(["system", "user", "assistant"]);
// a Map: a lookup of "constructor" or "__proto__" must find nothing
const difficulties = new Map<string, Difficulty>([["simple", "SIMPLE"], ["complex", "COMPLEX"], ["advanced", "ADVANCED"]]);
const accountKeyPattern = /^\d{4} ?\d{4} ?\d{4} ?\d{4}$/;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
// JSON clients write null for "not set" as often as they leave a field out
const isUnset = (value: unknown): value is null | undefined => value === undefined || value === null;

function fail(field: string | null, message: string): never {
  throw new InvalidChatBodyError(message, field);
}

function messages(value: unknown): ChatStreamRequest["input"]["messages"] {
  if (!Array.isArray(value) || value.length === 0) fail("messages", "messages must be a non-empty array of {role, content}");
  if (value.length > MAX_MESSAGES) fail("messages", `messages may hold at most ${MAX_MESSAGES} messages`);
  return value.map((message: unknown, i) => {
    const at = `messages[${i}]`;
    if (!isObject(message)) fail(at, `${at} must be an object with role and content`);
    const { role, content } = message;
    if (typeof role !== "string" || !roles.has(role)) fail(`${at}.role`, `${at}.role must be one of system, user, assistant`);
    if (typeof content !== "string") fail(`${at}.content`, `${at}.content must be a string`);
    if (content.length > MAX_CONTENT_CHARS) fail(`${at}.content`, `${at}.content is longer than ${MAX_CONTENT_CHARS} characters`);
    return { role: role as "system" | "user" | "assistant", content };
  });
}

/** The request in `body`, or an InvalidChatBodyError naming the field. Unknown fields are refused: a typo must not pass silently. */
export function parseChatStreamBody(body: unknown): ChatStreamRequest {
  if (!isObject(body)) fail(null, "the body must be a JSON object: {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]}");
  const unknown = Object.keys(body).find((key) => !FIELDS.has(key));
  if (unknown !== undefined) fail(unknown, `unknown field ${unknown} (fields: ${[...FIELDS].join(", ")})`);
  const request: ChatStreamRequest = { input: { messages: messages(body.messages) } };
  const { account_key: accountKey, max_tokens: maxTokens, model, difficulty, temperature } = body;
  if (!isUnset(accountKey)) {
    if (typeof accountKey !== "string" || !accountKeyPattern.test(accountKey.trim())) {
      fail("account_key", "account_key must be 16 digits, optionally in groups of four separated by spaces (e.g. 1234 5678 9012 3456)");
    }
    request.accountKey = accountKey.trim();
  }
  if (!isUnset(maxTokens)) {
    if (typeof maxTokens !== "number" || !Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > MAX_TOKENS) {
      fail("max_tokens", `max_tokens must be an integer from 1 to ${MAX_TOKENS}`);
    }
    request.input.maxTokens = maxTokens;
  }
  if (!isUnset(model)) {
    if (typeof model !== "string" || model.length > MAX_MODEL_CHARS) fail("model", `model must be a string of at most ${MAX_MODEL_CHARS} characters`);
    request.input.model = model;
  }
  if (!isUnset(difficulty)) {
    const hint = typeof difficulty === "string" ? difficulties.get(difficulty.toLowerCase()) : undefined;
    if (hint === undefined) fail("difficulty", "difficulty must be one of simple, complex, advanced");
    request.input.difficultyHint = hint;
  }
  if (!isUnset(temperature)) {
    if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0 || temperature > 2) {
      fail("temperature", "temperature must be a number from 0 to 2");
    }
    request.input.temperature = temperature;
  }
  Object.assign(request.input, readDivisionFields(body, fail));
  return request;
}
