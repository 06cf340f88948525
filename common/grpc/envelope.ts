// gRPC on an HTTP/2 stream as the lean gRPC paths (the coordinator's lane for agents' streams, the agent's client)
// read and write it: length-prefixed messages (one flag byte, 0: not compressed; a 4-byte big-endian length; the
// message) and headers as connect-es's status helpers read them.
import type { IncomingHttpHeaders } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

/** HTTP/2 headers (or trailers) as a Headers object, the pseudo-headers left out. */
export function headersFrom(headers: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    out.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return out;
}

/** `bytes` as one uncompressed gRPC message frame. */
export function envelope(bytes: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + bytes.length);
  frame[0] = 0;
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

/** Splits a byte stream into gRPC messages; a message may span several data chunks and a chunk hold many. */
export class EnvelopeParser {
  #rest: Buffer | undefined;

  constructor(private readonly maxBytes: number) {}

  /** True while a message is begun but not complete (a stream that ends now was cut short). */
  get pending(): boolean {
    return this.#rest !== undefined;
  }

  /** The messages `data` completes, in order; throws on a compressed or too large one. */
  *push(data: Buffer): Generator<Buffer> {
    const buf = this.#rest ? Buffer.concat([this.#rest, data]) : data;
    let at = 0;
    while (buf.length - at >= 5) {
      const length = buf.readUInt32BE(at + 1);
      if (buf[at]! & 1) throw new ConnectError("compressed message without grpc-encoding", Code.InvalidArgument);
      if (length > this.maxBytes) {
        throw new ConnectError(
          `message size ${length} is larger than configured readMaxBytes ${this.maxBytes}`,
          Code.ResourceExhausted,
        );
      }
      if (buf.length - at - 5 < length) break;
      yield buf.subarray(at + 5, at + 5 + length);
      at += 5 + length;
    }
    this.#rest = at === buf.length ? undefined : buf.subarray(at);
  }
}
