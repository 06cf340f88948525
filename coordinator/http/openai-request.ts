// Reads an OpenAI `POST /v1/chat/completions` body into the orchestrator's input, refusing what Iris can't honour.
import type { Difficulty } from "../../common/vocabulary.ts";
import type { ChatInput } from "../tasks/chat.ts";
import { readDivisionFields } from "./division-fields.ts";

/** A body OpenAI's API would refuse too; `param` names the field as OpenAI's errors do (`messages[0].content`). */
export class InvalidRequestError extends Error {
  constructor(
    message: string,
    readonly param: string | null,
  ) {
    super(message);
    this.name = "InvalidRequestError";
  }
}

export interface CompletionRequest {
  input: Omit<ChatInput, "signal" | "accountId" | "clientAddress">;
  stream: boolean;
  /** stream_options.include_usage: a last chunk with `choices: []` and the usage. */
  includeUsage: boolean;
}

type Role = ChatInput["messages"][number]["role"];

// The same bounds as ChatParams/ChatMessage in proto/iris/v1, so both APIs accept the same requests.
const MAX_MESSAGES = 1024;
const MAX_CONTENT_CHARS = 1_048_576;
const MAX_MODEL_CHARS = 256;
const MAX_TOKENS = 131_072;

// "developer" is what newer OpenAI clients send instead of "system"; to a plain chat model they are the same.
// Maps, not object literals: a lookup of "constructor" or "__proto__" must find nothing.
const roles = new Map<string, Role>([["system", "system"], ["developer", "system"], ["user", "user"], ["assistant", "assistant"]]);
const difficulties = new Map<string, Difficulty>([["simple", "SIMPLE"], ["complex", "COMPLEX"], ["advanced", "ADVANCED"]]);
const mediaParts = new Set(["image_url", "input_audio", "file"]);

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
/** OpenAI clients send null for "not set" as often as they leave a field out. */
const isUnset = (value: unknown): value is null | undefined => value === undefined || value === null;

function fail(param: string | null, message: string): never {
  throw new InvalidRequestError(message, param);
}

function optionalInteger(body: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const value = body[name];
  if (isUnset(value)) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    fail(name, `'${name}' must be an integer from ${min} to ${max}`);
  }
  return value;
}

function optionalBoolean(body: Record<string, unknown>, name: string, param = name): boolean | undefined {
  const value = body[name];
  if (isUnset(value)) return undefined;
  if (typeof value !== "boolean") fail(param, `'${param}' must be a boolean`);
  return value;
}

/** A message's text: a string, or the texts of its `{type: "text"}` parts joined by newlines (as vLLM does). */
function contentText(content: unknown, role: Role, at: string): string {
  if (typeof content === "string") return content;
  // assistant turns that only carried tool calls have null content; without tools they are simply empty
  if (isUnset(content) && role === "assistant") return "";
  if (!Array.isArray(content)) fail(`${at}.content`, `'${at}.content' must be a string or an array of text parts`);
  return content
    .map((part: unknown, j) => {
      const where = `${at}.content[${j}]`;
      if (!isObject(part) || typeof part.type !== "string") fail(where, `'${where}' must be an object with a 'type'`);
      if (mediaParts.has(part.type)) {
        fail(where, `'${where}' is of type '${part.type}': Iris nodes run text-only models, so only 'text' parts are accepted`);
      }
      if (part.type !== "text") fail(where, `'${where}.type' must be 'text' (got '${part.type}')`);
      if (typeof part.text !== "string") fail(`${where}.text`, `'${where}.text' must be a string`);
      return part.text;
    })
    .join("\n");
}

function readMessages(value: unknown): ChatInput["messages"] {
  if (isUnset(value)) fail("messages", "'messages' is required: the conversation to answer");
  if (!Array.isArray(value)) fail("messages", "'messages' must be an array of messages");
  if (value.length === 0) fail("messages", "'messages' must contain at least one message");
  if (value.length > MAX_MESSAGES) fail("messages", `'messages' may contain at most ${MAX_MESSAGES} messages`);
  return value.map((message: unknown, i) => {
    const at = `messages[${i}]`;
    if (!isObject(message)) fail(at, `'${at}' must be an object with 'role' and 'content'`);
    const role = typeof message.role === "string" ? roles.get(message.role) : undefined;
    if (role === undefined) {
      const supported = "'system', 'developer', 'user' or 'assistant'";
      fail(`${at}.role`, message.role === "tool" || message.role === "function"
        ? `'${at}.role' is '${message.role}': tool calling is not supported; use ${supported}`
        : `'${at}.role' must be ${supported}`);
    }
    if (Array.isArray(message.tool_calls) && message.tool_calls.length > 0) {
      fail(`${at}.tool_calls`, `'${at}.tool_calls': tool calling is not supported`);
    }
    const content = contentText(message.content, role, at);
    if (content.length > MAX_CONTENT_CHARS) fail(`${at}.content`, `'${at}.content' is longer than ${MAX_CONTENT_CHARS} characters`);
    return { role, content };
  });
}

/**
 * Validates a chat completion body. Honoured: model, messages, max_completion_tokens (or the older max_tokens),
 * temperature, stream, stream_options.include_usage, n (1 only) and Iris's extensions: the `difficulty` hint,
 * `division_mode` and `consensus_nodes` (see division-fields.ts). Refused: n > 1,
 * tools/functions, non-text content. Other OpenAI fields (top_p, stop, seed, penalties, user, …) are accepted
 * and ignored: the node protocol does not carry them yet.
 */
export function parseCompletionRequest(body: unknown): CompletionRequest {
  if (!isObject(body)) fail(null, "the request body must be a JSON object");
  let model: string | undefined;
  if (!isUnset(body.model)) {
    if (typeof body.model !== "string") fail("model", "'model' must be a string");
    if (body.model.length > MAX_MODEL_CHARS) fail("model", `'model' must be at most ${MAX_MODEL_CHARS} characters`);
    model = body.model;
  }
  const messages = readMessages(body.messages);
  const n = optionalInteger(body, "n", 1, 128);
  if (n !== undefined && n !== 1) fail("n", "'n' must be 1: Iris returns one choice per request");
  for (const name of ["tools", "functions"]) {
    const value = body[name];
    if (Array.isArray(value) && value.length > 0) fail(name, `'${name}': tool calling is not supported`);
  }
  const maxTokens = optionalInteger(body, "max_completion_tokens", 1, MAX_TOKENS) ?? optionalInteger(body, "max_tokens", 1, MAX_TOKENS);
  let temperature: number | undefined;
  if (!isUnset(body.temperature)) {
    if (typeof body.temperature !== "number" || !(body.temperature >= 0 && body.temperature <= 2)) {
      fail("temperature", "'temperature' must be a number from 0 to 2");
    }
    temperature = body.temperature;
  }
  const stream = optionalBoolean(body, "stream") ?? false;
  let includeUsage = false;
  if (!isUnset(body.stream_options)) {
    if (!isObject(body.stream_options)) fail("stream_options", "'stream_options' must be an object");
    includeUsage = optionalBoolean(body.stream_options, "include_usage", "stream_options.include_usage") ?? false;
  }
  let difficultyHint: Difficulty | undefined;
  if (!isUnset(body.difficulty)) {
    difficultyHint = typeof body.difficulty === "string" ? difficulties.get(body.difficulty.toLowerCase()) : undefined;
    if (!difficultyHint) fail("difficulty", "'difficulty' must be 'simple', 'complex' or 'advanced'");
  }
  const division = readDivisionFields(body, fail, (param) => `'${param}'`);
  return { input: { messages, model, maxTokens, temperature, difficultyHint, ...division }, stream, includeUsage };
}
