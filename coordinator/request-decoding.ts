// How every RPC's request is decoded: strict JSON, and a request that does not decode is the client's fault.
import type { DescEnum, DescField, DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouterOptions, type HandlerContext } from "@connectrpc/connect";

/*
 * Two connect-es defaults that would let a bad request pass as a different, valid one, or blame the server:
 * - JSON: connect-es ignores unknown fields, and protobuf-es then also drops unknown enum names, so
 *   `"difficulty": "DIFFICULTY_HARD"` became "no difficulty" without a word. Strict reading refuses both
 *   (InvalidArgument), as the HTTP chat routes refuse an unknown field: a typo must not pass silently.
 *   Binary protobuf is unchanged (unknown fields are kept there, as the format intends).
 * - Binary: a request that does not parse is `Internal` ("parse binary: ..."), because connect-es uses one
 *   serializer for requests and responses and a response that does not parse is the server's fault. A request
 *   is the client's: InvalidArgument, as connect-go answers.
 * The JSON enum error names the enum, not the field ("cannot decode enum iris.v1.Difficulty"); the message is
 * rewritten to name the field(s) of the request that have that enum.
 *
 * The parse happens before interceptors run (for unary calls), and its error is always wrapped as Internal,
 * so no interceptor or serializer option can change it. What every protocol handler does do is abort the
 * call's context with the very error it is about to send (`context.abort(e)`, then serialize `e`); the request
 * gate, which runs first on every call, listens for that and corrects the error in place.
 */

/** Options for the Connect router (server.ts). */
export const requestDecoding = {
  jsonOptions: { ignoreUnknownFields: false },
  requestGate: (context: HandlerContext) => {
    const { signal } = context;
    signal.addEventListener("abort", () => correctInPlace(signal.reason, context.method.input), { once: true });
  },
} satisfies ConnectRouterOptions;

const BINARY_PARSE = /^parse binary: (.*)$/s;
const JSON_ENUM = /^cannot decode enum ([\w.]+) from JSON: (.*)$/s;

/**
 * The error a client should see for a request of type `input` that failed to decode with `err`, or undefined
 * when `err` is no decoding failure (or already says what it should).
 */
export function clearerDecodeError(err: ConnectError, input: DescMessage): ConnectError | undefined {
  const binary = err.code === Code.Internal ? BINARY_PARSE.exec(err.rawMessage) : null;
  if (binary) {
    return new ConnectError(
      `the request is not a valid ${input.typeName} in protobuf binary: ${binary[1]}`,
      Code.InvalidArgument,
    );
  }
  const json = err.code === Code.InvalidArgument ? JSON_ENUM.exec(err.rawMessage) : null;
  if (json) {
    const [, typeName = "", value = ""] = json;
    const fields = enumFields(input, typeName);
    if (fields.length === 0) return undefined;
    const known = fields[0]!.desc.values.map((v) => v.name).join(", ");
    const where = fields.map((f) => f.path).join(" or ");
    return new ConnectError(
      `invalid ${where}: ${value} is not a value of ${typeName} (one of ${known})`,
      Code.InvalidArgument,
    );
  }
  return undefined;
}

function correctInPlace(reason: unknown, input: DescMessage): void {
  if (!(reason instanceof ConnectError)) return;
  const clearer = clearerDecodeError(reason, input);
  if (!clearer) return;
  // the handler sends this very object once abort() returns; code and messages are plain properties
  Object.assign(reason, { code: clearer.code, rawMessage: clearer.rawMessage, message: clearer.message });
}

/** The paths (proto field names, `[]` for list items) of the fields of `message` that hold the enum `typeName`. */
export function enumFields(
  message: DescMessage,
  typeName: string,
  prefix = "",
  seen = new Set<string>(),
): { path: string; desc: DescEnum }[] {
  if (seen.has(message.typeName)) return []; // recursive messages: one level is enough to name the field
  const inner = new Set(seen).add(message.typeName);
  return message.fields.flatMap((field) => {
    const path = prefix + field.name;
    const found = fieldEnum(field);
    if (found?.typeName === typeName) return [{ path, desc: found }];
    const nested = fieldMessage(field);
    if (!nested) return [];
    return enumFields(nested.desc, typeName, `${path + nested.suffix}.`, inner);
  });
}

function fieldEnum(field: DescField): DescEnum | undefined {
  if (field.fieldKind === "enum") return field.enum;
  if (field.fieldKind === "list" && field.listKind === "enum") return field.enum;
  if (field.fieldKind === "map" && field.mapKind === "enum") return field.enum;
  return undefined;
}

function fieldMessage(field: DescField): { desc: DescMessage; suffix: string } | undefined {
  if (field.fieldKind === "message") return { desc: field.message, suffix: "" };
  if (field.fieldKind === "list" && field.listKind === "message") return { desc: field.message, suffix: "[]" };
  if (field.fieldKind === "map" && field.mapKind === "message") return { desc: field.message, suffix: "[]" };
  return undefined;
}
