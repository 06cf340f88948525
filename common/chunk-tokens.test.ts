// TaskChunk token counts through the binary wire: written by a node, read by the coordinator, default one.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { TaskChunkSchema } from "../gen/iris/v1/node_pb.ts";
import { chunkTokenCount, chunkWithTokens } from "./chunk-tokens.ts";

const TOKEN_COUNT_FIELD = 5;

const init = {
  taskId: "0f6d3c2e-9a43-4c1b-8f6e-2d1b7a9c4e51",
  sequence: 3,
  content: { case: "text", value: "é" },
} as const;
const overTheWire = (bytes: Uint8Array) => fromBinary(TaskChunkSchema, bytes);

describe("chunk token counts", () => {
  it.each([
    { tokens: 1, read: 1 },
    { tokens: 3, read: 3 },
    { tokens: 70_000, read: 70_000 },
    { tokens: 0, read: 1 }, // unsaid: one token, as nodes streamed before the count existed
  ])("a chunk written with $tokens tokens reads as $read", ({ tokens, read }) => {
    const chunk = overTheWire(toBinary(TaskChunkSchema, chunkWithTokens(init, tokens)));
    expect(chunkTokenCount(chunk)).toBe(read);
    expect(chunk).toMatchObject({ taskId: init.taskId, sequence: 3, content: { case: "text", value: "é" } });
  });

  it("is uint32 field 5 on the wire (nodes that predate it send none)", () => {
    const plain = toBinary(TaskChunkSchema, create(TaskChunkSchema, init));
    const counted = toBinary(TaskChunkSchema, chunkWithTokens(init, 300));
    expect([...counted]).toEqual([...plain, (TOKEN_COUNT_FIELD << 3) | WireType.Varint, 0xac, 0x02]);
  });

  it("reads a chunk from a node that sends no count as one token", () => {
    expect(chunkTokenCount(overTheWire(toBinary(TaskChunkSchema, create(TaskChunkSchema, init))))).toBe(1);
  });
});
