// Reads an OpenAI `POST /v1/chat/completions` body into ChatParams, refusing what Iris can't honour; the limits are
// ChatParams' own (chat-params-from-json.ts).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { chatRoleToProto, type ChatRole } from "../../common/vocabulary.ts";
import type { ChatMessageSchema } from "../../gen/iris/v1/common_pb.ts";
import type { ChatParams } from "../../gen/iris/v1/inference_pb.ts";
import { chatParamsFromJson, isObject, isUnset } from "./chat-params-from-json.ts";
import { InvalidFieldError } from "./invalid-field-error.ts";

export interface CompletionRequest {
  params: ChatParams;
  stream: boolean;
  /** stream_options.include_usage: a last chunk with `choices: []` and the usage. */
  includeUsage: boolean;
}

// "developer" is what newer OpenAI clients send instead of "system"; to a plain chat model they are the same.
// A Map, not an object literal: a lookup of "constructor" or "__proto__" must find nothing.
const roles = new Map<string, ChatRole>([
  ["system", "system"],
  ["developer", "system"],
  ["user", "user"],
  ["assistant", "assistant"],
]);
const mediaParts = new Set(["image_url", "input_audio", "file"]);
/** OpenAI's errors quote a field's name. */
const quoted = (field: string) => `'${field}'`;

function fail(param: string | null, message: string): never {
  throw new InvalidFieldError(message, param);
}

function optionalBoolean(body: Record<string, unknown>, name: string, param = name): boolean | undefined {
  const value = body[name];
  if (isUnset(value)) return undefined;
  if (typeof value !== "boolean") fail(param, `'${param}' must be a boolean`);
  return value;
}

/** A message's text: a string, or the texts of its `{type: "text"}` parts joined by newlines (as vLLM does). */
function contentText(content: unknown, role: ChatRole, at: string): string {
  if (typeof content === "string") return content;
  // assistant turns that only carried tool calls have null content; without tools they are simply empty
  if (isUnset(content) && role === "assistant") return "";
  if (!Array.isArray(content)) fail(`${at}.content`, `'${at}.content' must be a string or an array of text parts`);
  return content
    .map((part: unknown, j) => {
      const where = `${at}.content[${j}]`;
      if (!isObject(part) || typeof part.type !== "string") fail(where, `'${where}' must be an object with a 'type'`);
      if (mediaParts.has(part.type)) {
        fail(
          where,
          `'${where}' is of type '${part.type}': Iris nodes run text-only models, so only 'text' parts are accepted`,
        );
      }
      if (part.type !== "text") fail(where, `'${where}.type' must be 'text' (got '${part.type}')`);
      if (typeof part.text !== "string") fail(`${where}.text`, `'${where}.text' must be a string`);
      return part.text;
    })
    .join("\n");
}

function readMessages(value: unknown): MessageInitShape<typeof ChatMessageSchema>[] {
  if (isUnset(value)) fail("messages", "'messages' is required: the conversation to answer");
  if (!Array.isArray(value)) fail("messages", "'messages' must be an array of messages");
  return value.map((message: unknown, i) => {
    const at = `messages[${i}]`;
    if (!isObject(message)) fail(at, `'${at}' must be an object with 'role' and 'content'`);
    const role = typeof message.role === "string" ? roles.get(message.role) : undefined;
    if (role === undefined) {
      const supported = "'system', 'developer', 'user' or 'assistant'";
      fail(
        `${at}.role`,
        message.role === "tool" || message.role === "function"
          ? `'${at}.role' is '${message.role}': tool calling is not supported; use ${supported}`
          : `'${at}.role' must be ${supported}`,
      );
    }
    if (Array.isArray(message.tool_calls) && message.tool_calls.length > 0) {
      fail(`${at}.tool_calls`, `'${at}.tool_calls': tool calling is not supported`);
    }
    return { role: chatRoleToProto[role], content: contentText(message.content, role, at) };
  });
}

/**
 * Validates a chat completion body. Honoured: model, messages, max_completion_tokens (or the older max_tokens),
 * temperature, stream, stream_options.include_usage, n (1 only) and Iris's extensions: the `difficulty` hint,
 * `division_mode` and `consensus_nodes`. Refused: n > 1, tools/functions, non-text content. Other OpenAI fields
 * (top_p, stop, seed, penalties, user, …) are accepted and ignored: the node protocol does not carry them yet.
 */
export function parseCompletionRequest(body: unknown): CompletionRequest {
  if (!isObject(body)) fail(null, "the request body must be a JSON object");
  const messages = readMessages(body.messages);
  if (!isUnset(body.n) && body.n !== 1) fail("n", "'n' must be 1: Iris returns one choice per request");
  for (const name of ["tools", "functions"]) {
    const value = body[name];
    if (Array.isArray(value) && value.length > 0) fail(name, `'${name}': tool calling is not supported`);
  }
  const stream = optionalBoolean(body, "stream") ?? false;
  let includeUsage = false;
  if (!isUnset(body.stream_options)) {
    if (!isObject(body.stream_options)) fail("stream_options", "'stream_options' must be an object");
    includeUsage = optionalBoolean(body.stream_options, "include_usage", "stream_options.include_usage") ?? false;
  }
  const maxTokensKey = isUnset(body.max_completion_tokens) ? "max_tokens" : "max_completion_tokens";
  const params = chatParamsFromJson(body, { messages, maxTokensKey, name: quoted });
  return { params, stream, includeUsage };
}
