// gRPC on the wire, by hand, for the load generators: HTTP/2 streams, length-prefixed frames, and the few
// hot messages (sealed TaskChunk out, Token in) encoded and peeked at without protobuf-es, so the generators
// spend microseconds per token and the coordinator is what the benchmark measures. Everything else goes
// through protobuf-es; `checkWireEncoding()` proves the hand encodings decode to the intended messages.
import type http2 from "node:http2";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { ConnectRequestSchema } from "../gen/iris/v1/node_pb.ts";
import { ChatResponseSchema } from "../gen/iris/v1/inference_pb.ts";
import { envelope, EnvelopeParser } from "../common/grpc/envelope.ts";

/** Opens a gRPC call (any streaming shape) on a session. */
export function openCall(
  session: http2.ClientHttp2Session,
  path: string,
  headers: Record<string, string> = {},
): http2.ClientHttp2Stream {
  return session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc+proto",
    te: "trailers",
    ...headers,
  });
}

/** One message as a gRPC frame (flag byte 0, 4-byte big-endian length, the bytes). */
export const frame = envelope;

export function encodeFrame<D extends DescMessage>(schema: D, init: MessageInitShape<D>): Buffer {
  return frame(toBinary(schema, create(schema, init)));
}

/** Splits a stream's DATA into messages, across chunk boundaries. */
export class FrameReader {
  readonly #parser = new EnvelopeParser(Number.MAX_SAFE_INTEGER);
  constructor(private readonly onMessage: (message: Buffer) => void) {}

  push(chunk: Buffer): void {
    for (const message of this.#parser.push(chunk)) this.onMessage(message);
  }
}

function varintLength(n: number): number {
  let length = 1;
  while (n >= 0x80) {
    n >>>= 7;
    length++;
  }
  return length;
}

function writeVarint(buf: Buffer, offset: number, n: number): number {
  while (n >= 0x80) {
    buf[offset++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[offset++] = n;
  return offset;
}

/** Largest frame `writeSealedChunkFrame` writes for a ciphertext (tag included) of `ciphertextBytes` bytes. */
export const maxSealedChunkFrameBytes = (ciphertextBytes: number) =>
  5 + 1 + 5 + (2 + 36) + (1 + 5) + (1 + 5) + (2 + 12) + (1 + 5 + ciphertextBytes) + (1 + 5);

/**
 * Writes ConnectRequest{chunk: TaskChunk{task_id, sequence, sealed: SealedPayload{nonce, ciphertext},
 * token_count}} as a gRPC frame at `offset` of `buf`; returns the offset after it. A token count of 0 is left
 * out (the coordinator reads it as 1), as for one token a chunk.
 */
export function writeSealedChunkFrame(
  buf: Buffer,
  offset: number,
  taskId: Buffer,
  sequence: number,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  tokenCount = 0,
): number {
  // SealedPayload: 1 nonce, 2 ciphertext (both len-delimited)
  const sealed =
    1 + varintLength(nonce.length) + nonce.length + 1 + varintLength(ciphertext.length) + ciphertext.length;
  // TaskChunk: 1 task_id, 2 sequence (omitted when 0), 4 sealed, 5 token_count (omitted when 0)
  const inner =
    1 +
    varintLength(taskId.length) +
    taskId.length +
    (sequence > 0 ? 1 + varintLength(sequence) : 0) +
    1 +
    varintLength(sealed) +
    sealed +
    (tokenCount > 0 ? 1 + varintLength(tokenCount) : 0);
  const outer = 1 + varintLength(inner) + inner;
  buf[offset] = 0;
  buf.writeUInt32BE(outer, offset + 1);
  let at = offset + 5;
  buf[at++] = 0x1a;
  at = writeVarint(buf, at, inner);
  buf[at++] = 0x0a;
  at = writeVarint(buf, at, taskId.length);
  at += taskId.copy(buf, at);
  if (sequence > 0) {
    buf[at++] = 0x10;
    at = writeVarint(buf, at, sequence);
  }
  buf[at++] = 0x22;
  at = writeVarint(buf, at, sealed);
  buf[at++] = 0x0a;
  at = writeVarint(buf, at, nonce.length);
  buf.set(nonce, at);
  at += nonce.length;
  buf[at++] = 0x12;
  at = writeVarint(buf, at, ciphertext.length);
  buf.set(ciphertext, at);
  at += ciphertext.length;
  if (tokenCount > 0) {
    buf[at++] = 0x28;
    at = writeVarint(buf, at, tokenCount);
  }
  return at;
}

/** ChatResponse's oneof `event`, by its first byte (field number << 3 | wire type 2). */
export const chatEventTag = { queued: 0x0a, accepted: 0x12, token: 0x1a, done: 0x22 } as const;

function readVarint(buf: Buffer, offset: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = buf[offset++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, offset];
    shift += 7;
  }
}

/** The text of a ChatResponse{token: Token{text}} message (call only when its first byte is the token tag). */
export function tokenText(message: Buffer): Buffer {
  const [, at] = readVarint(message, 1); // Token's length
  if (at >= message.length) return Buffer.alloc(0); // Token{} with empty text
  if (message[at] !== 0x0a) throw new Error("unexpected Token encoding");
  const [length, start] = readVarint(message, at + 1);
  return message.subarray(start, start + length);
}

/** Throws unless the hand encodings agree with protobuf-es on real messages. */
export function checkWireEncoding(): void {
  const taskId = "0b7c4f0e-8a3c-4d6f-9f43-2a8e8c1d5e77";
  for (const [sequence, tokenCount] of [
    [0, 0],
    [1, 1],
    [127, 0],
    [128, 300],
    [300_000, 20],
  ] as const) {
    const text = Buffer.from(sequence === 300_000 ? "@12345.678".repeat(20) : " token");
    const nonce = Uint8Array.from({ length: 12 }, (_, i) => i + sequence);
    const ciphertext = Buffer.concat([text, Buffer.alloc(16, 7)]);
    const sealedBuf = Buffer.alloc(maxSealedChunkFrameBytes(ciphertext.length));
    const sealedEnd = writeSealedChunkFrame(sealedBuf, 0, Buffer.from(taskId), sequence, nonce, ciphertext, tokenCount);
    const sealed = fromBinary(ConnectRequestSchema, sealedBuf.subarray(5, sealedEnd)).message;
    if (
      sealedBuf.readUInt32BE(1) !== sealedEnd - 5 ||
      sealed.case !== "chunk" ||
      sealed.value.taskId !== taskId ||
      sealed.value.sequence !== sequence ||
      sealed.value.tokenCount !== tokenCount ||
      sealed.value.content.case !== "sealed" ||
      !Buffer.from(sealed.value.content.value.nonce).equals(nonce) ||
      !Buffer.from(sealed.value.content.value.ciphertext).equals(ciphertext)
    ) {
      throw new Error(`hand-encoded sealed TaskChunk ${sequence} does not decode as intended`);
    }
    const token = toBinary(
      ChatResponseSchema,
      create(ChatResponseSchema, { event: { case: "token", value: { text: text.toString() } } }),
    );
    if (token[0] !== chatEventTag.token || tokenText(Buffer.from(token)).toString() !== text.toString()) {
      throw new Error("Token peeking does not read protobuf-es's encoding");
    }
  }
}
