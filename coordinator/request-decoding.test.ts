// Decoding failures as the client should hear them: which errors are rewritten, and the fields an enum lives in.
// Over real sockets (Connect, gRPC): test/hostile-values.test.ts.
import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createMethodSerializationLookup } from "@connectrpc/connect/protocol";
import { describe, expect, it } from "vitest";
import { DifficultySchema, RoleSchema } from "../gen/iris/v1/common_pb.ts";
import { ChatRequestSchema, ChatUnaryRequestSchema, InferenceService } from "../gen/iris/v1/inference_pb.ts";
import { ConnectRequestSchema } from "../gen/iris/v1/node_pb.ts";
import { clearerDecodeError, enumFields, requestDecoding } from "./request-decoding.ts";

/** The error connect-es raises for these request bytes, with the router's options. */
function parseError(parse: () => unknown): ConnectError {
  try {
    parse();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the request not to decode");
}
const serialization = createMethodSerializationLookup(
  InferenceService.method.chatUnary,
  undefined,
  requestDecoding.jsonOptions,
  {
    readMaxBytes: 0xffffffff,
    writeMaxBytes: 0xffffffff,
  },
);
const json = (text: string) => parseError(() => serialization.getI(false).parse(new TextEncoder().encode(text)));
const binary = (bytes: number[]) => parseError(() => serialization.getI(true).parse(new Uint8Array(bytes)));

describe("clearerDecodeError", () => {
  it.each([
    [
      "garbage bytes",
      () => binary([0xff, 0xff, 0xff]),
      "the request is not a valid iris.v1.ChatUnaryRequest in protobuf binary: premature EOF",
    ],
    [
      "an illegal tag",
      () => binary([0x07]),
      "the request is not a valid iris.v1.ChatUnaryRequest in protobuf binary: illegal tag: field no 0 wire type 7",
    ],
    [
      "an unknown enum name",
      () => json('{"params":{"messages":[],"difficulty":"DIFFICULTY_HARD"}}'),
      'invalid params.difficulty: "DIFFICULTY_HARD" is not a value of iris.v1.Difficulty (one of ' +
        "DIFFICULTY_UNSPECIFIED, DIFFICULTY_SIMPLE, DIFFICULTY_COMPLEX, DIFFICULTY_ADVANCED)",
    ],
    [
      "a prototype name as a role",
      () => json('{"params":{"messages":[{"role":"constructor"}]}}'),
      /^invalid params\.messages\[\]\.role: "constructor" is not a value of iris\.v1\.Role/,
    ],
  ])("makes %s InvalidArgument naming where", (_name, error, message) => {
    const original = error();
    const clearer = clearerDecodeError(original, ChatUnaryRequestSchema);
    expect(clearer?.code).toBe(Code.InvalidArgument);
    expect(clearer?.rawMessage).toMatch(message);
  });

  it("leaves other errors alone, the JSON errors that already name their key included", () => {
    const unknownKey = json('{"params":{"messages":[]},"extra":1}');
    expect(unknownKey.code).toBe(Code.InvalidArgument);
    expect(unknownKey.rawMessage).toContain('key "extra" is unknown');
    expect(clearerDecodeError(unknownKey, ChatUnaryRequestSchema)).toBeUndefined();
    expect(
      clearerDecodeError(
        new ConnectError("parse binary: as a handler's own words", Code.NotFound),
        ChatUnaryRequestSchema,
      ),
    ).toBeUndefined();
    expect(
      clearerDecodeError(new ConnectError("internal error", Code.Internal), ChatUnaryRequestSchema),
    ).toBeUndefined();
    // an enum the request does not have stays as it was (nothing to name)
    expect(
      clearerDecodeError(
        new ConnectError('cannot decode enum iris.v1.Elsewhere from JSON: "X"', Code.InvalidArgument),
        ChatUnaryRequestSchema,
      ),
    ).toBeUndefined();
  });

  it("is what strict JSON makes of the cases connect-es used to let through", () => {
    expect(() =>
      fromJsonString(ChatRequestSchema, '{"params":{"difficulty":"DIFFICULTY_HARD"}}', requestDecoding.jsonOptions),
    ).toThrow(/iris\.v1\.Difficulty/);
    expect(() => fromBinary(ChatRequestSchema, new Uint8Array([0xff]))).toThrow();
  });
});

describe("enumFields", () => {
  it("finds an enum's fields by path through nested and repeated messages", () => {
    expect(enumFields(ChatRequestSchema, DifficultySchema.typeName).map((f) => f.path)).toEqual(["params.difficulty"]);
    expect(enumFields(ChatRequestSchema, RoleSchema.typeName).map((f) => f.path)).toEqual(["params.messages[].role"]);
    expect(enumFields(ChatRequestSchema, "iris.v1.Nothing")).toEqual([]);
  });

  it("ends on recursive or large messages (the node stream's oneof of everything)", () => {
    expect(() => enumFields(ConnectRequestSchema, DifficultySchema.typeName)).not.toThrow();
  });
});
