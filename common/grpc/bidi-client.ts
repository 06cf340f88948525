// A lean gRPC client for one bidi-streaming call over its own HTTP/2 connection (the agent's NodeService.Connect):
// messages are written as they come, without waiting for each write's callback (a chunk and the result that follows
// it leave together) and read without connect-es's stacked async-iterable pipeline. Failures are ConnectErrors with
// the codes connect-es gives: the server's status from the trailers, Unavailable for a connection that fails or drops
// (the Node.js error, a TLS one included, kept as its cause), Canceled when the caller aborts.
import http2 from "node:http2";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethodBiDiStreaming,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { Channel } from "../channel.ts";
import { drained } from "../drained.ts";
import { envelope, EnvelopeParser, headersFrom } from "./envelope.ts";

export interface BidiCallOptions {
  /** Aborting it ends the call (Canceled) and closes its connection. */
  signal: AbortSignal;
  /** TLS options (a CA to trust) for an https:// URL. */
  nodeOptions?: http2.SecureClientSessionOptions;
  /** Largest message accepted from the server (default 16 MiB). */
  readMaxBytes?: number;
}

/** Messages parsed but not yet taken by the caller before the stream stops reading (flow control). */
const HIGH_WATER = 64;

/** Calls `method` at `baseUrl`, sending `requests` (the call's request stream ends when they do). */
export function callBidi<I extends DescMessage, O extends DescMessage>(
  baseUrl: string,
  method: DescMethodBiDiStreaming<I, O>,
  requests: AsyncIterable<MessageInitShape<I>>,
  options: BidiCallOptions,
): AsyncIterable<MessageShape<O>> {
  const responses = new Channel<MessageShape<O>>();
  let failed: ConnectError | undefined;
  const fail = (error: ConnectError) => {
    failed ??= error;
    responses.close(failed);
    session.destroy();
  };
  const session = http2.connect(baseUrl, options.nodeOptions);
  session.on("error", (err) => fail(transportError(err)));
  const onAbort = () =>
    fail(new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, options.signal.reason));
  if (options.signal.aborted) queueMicrotask(onAbort);
  else options.signal.addEventListener("abort", onAbort, { once: true });
  session.once("close", () => {
    options.signal.removeEventListener("abort", onAbort);
    fail(new ConnectError("the connection closed", Code.Unavailable));
  });

  const stream = session.request({
    ":method": "POST",
    ":path": `/${method.parent.typeName}/${method.name}`,
    "content-type": "application/grpc+proto",
    te: "trailers",
  });
  stream.on("error", (err) => fail(transportError(err)));
  // the call is over only with a status (trailers, or a trailers-only answer): an end without one is a drop
  let statusSeen = false;
  stream.on("response", (headers) => {
    const status = headers[":status"];
    if (status !== 200) {
      fail(new ConnectError(`HTTP ${status} from the server`, Code.Unavailable));
      return;
    }
    // a trailers-only response carries the status in its headers
    statusSeen = headers["grpc-status"] !== undefined;
    const error = findTrailerError(headersFrom(headers));
    if (error) fail(error);
  });
  const parser = new EnvelopeParser(options.readMaxBytes ?? 16 * 1024 * 1024);
  stream.on("data", (data: Buffer) => {
    try {
      for (const bytes of parser.push(data)) responses.push(fromBinary(method.output, bytes));
    } catch (err) {
      fail(ConnectError.from(err, Code.Internal));
      return;
    }
    if (responses.queued > HIGH_WATER && !stream.isPaused()) {
      stream.pause();
      responses.onDrained(() => stream.resume());
    }
  });
  stream.on("trailers", (trailers) => {
    statusSeen = true;
    const error = findTrailerError(headersFrom(trailers));
    if (error) fail(error);
  });
  stream.on("end", () => {
    if (!statusSeen) fail(new ConnectError("the connection closed before the call ended", Code.Unavailable));
    else if (parser.pending) fail(new ConnectError("protocol error: the response ended mid-message", Code.Internal));
    else responses.close(failed);
    session.close();
  });
  void writeAll(stream, method.input, requests).catch((err: unknown) => fail(ConnectError.from(err, Code.Internal)));
  return {
    [Symbol.asyncIterator]() {
      const it = responses[Symbol.asyncIterator]();
      return {
        next: () => it.next(),
        // the caller stopped reading: the call is over
        return: (value?: unknown) => {
          if (!failed) fail(new ConnectError("the call was cancelled", Code.Canceled));
          return Promise.resolve({ done: true as const, value });
        },
      };
    },
  };
}

async function writeAll<I extends DescMessage>(
  stream: http2.ClientHttp2Stream,
  schema: I,
  requests: AsyncIterable<MessageInitShape<I>>,
): Promise<void> {
  for await (const message of requests) {
    if (stream.destroyed) return;
    if (!stream.write(envelope(toBinary(schema, create(schema, message))))) await drained(stream);
  }
  if (!stream.destroyed) stream.end();
}

/** A connection's failure: Unavailable (the agent tries again), the Node.js error as its cause (TLS faults in it). */
function transportError(err: Error): ConnectError {
  // a stream cancelled because its connection failed: the connection's error says why
  const cause = (err as NodeJS.ErrnoException).code === "ERR_HTTP2_STREAM_CANCEL" && err.cause instanceof Error;
  const reason = cause ? (err.cause as Error) : err;
  return new ConnectError(reason.message, Code.Unavailable, undefined, undefined, reason);
}
