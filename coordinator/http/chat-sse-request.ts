// Reads a `POST /api/chat/stream` JSON body into ChatParams, naming the field of anything wrong; the limits are
// ChatParams' own (chat-params-from-json.ts).
import { CHAT_ROLES, chatRoleToProto, type ChatRole } from "../../common/vocabulary.ts";
import type { ChatParams } from "../../gen/iris/v1/inference_pb.ts";
import { chatParamsFromJson, isObject, isUnset } from "./chat-params-from-json.ts";
import { InvalidFieldError } from "./invalid-field-error.ts";

const FIELDS = new Set([
  "messages",
  "account_key",
  "max_tokens",
  "model",
  "difficulty",
  "temperature",
  "division_mode",
  "consensus_nodes",
]);
const isRole = (value: unknown): value is ChatRole =>
  typeof value === "string" && (CHAT_ROLES as readonly string[]).includes(value);

function fail(field: string | null, message: string): never {
  throw new InvalidFieldError(message, field);
}

function messages(value: unknown): Parameters<typeof chatParamsFromJson>[1]["messages"] {
  if (!Array.isArray(value)) fail("messages", "messages must be a non-empty array of {role, content}");
  return value.map((message: unknown, i) => {
    const at = `messages[${i}]`;
    if (!isObject(message)) fail(at, `${at} must be an object with role and content`);
    const { role, content } = message;
    if (!isRole(role)) fail(`${at}.role`, `${at}.role must be one of ${CHAT_ROLES.join(", ")}`);
    if (typeof content !== "string") fail(`${at}.content`, `${at}.content must be a string`);
    return { role: chatRoleToProto[role], content };
  });
}

/**
 * The request in `body`, or an InvalidFieldError naming the field. Unknown fields are refused: a typo must not pass
 * silently.
 */
export function parseChatStreamBody(body: unknown): ChatParams {
  if (!isObject(body)) fail(null, 'the body must be a JSON object: {"messages": [{"role": "user", "content": "..."}]}');
  const unknown = Object.keys(body).find((key) => !FIELDS.has(key));
  if (unknown !== undefined) fail(unknown, `unknown field ${unknown} (fields: ${[...FIELDS].join(", ")})`);
  const { account_key: accountKey } = body;
  if (!isUnset(accountKey) && typeof accountKey !== "string")
    fail("account_key", "account_key must be a string of 16 digits");
  // ChatParams' empty key means "none"; here that is a missing field, and an empty one is a mistake
  if (accountKey?.trim() === "") fail("account_key", "account_key is empty: leave it out for anonymous use");
  return chatParamsFromJson(body, { messages: messages(body.messages), accountKey: accountKey?.trim() });
}
