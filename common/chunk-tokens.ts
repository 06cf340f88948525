// How many tokens a TaskChunk carries (TaskChunk.token_count), for the node that writes it and the coordinator.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { TaskChunkSchema, type TaskChunk } from "../gen/iris/v1/node_pb.ts";

/** A chunk that carries `tokens` tokens (a piece the engine released at once may take several). */
export function chunkWithTokens(init: MessageInitShape<typeof TaskChunkSchema>, tokens: number): TaskChunk {
  return create(TaskChunkSchema, { ...init, tokenCount: Math.max(0, Math.floor(tokens)) });
}

/** Tokens the chunk carries; 1 from a node that does not say (one token per chunk, as nodes used to stream). */
export function chunkTokenCount(chunk: TaskChunk): number {
  return chunk.tokenCount > 0 ? chunk.tokenCount : 1;
}
