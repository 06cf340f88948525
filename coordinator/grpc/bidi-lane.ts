// A lean gRPC path for one bidi-streaming method (agents' NodeService.Connect): length-prefixed messages read from
// the HTTP/2 stream's data and written as they come, without connect-es's stacked async-iterable pipeline (about a
// third of the coordinator's CPU per relayed chunk and most of an idle node's heap). The same implementation serves
// every other protocol (Connect, gRPC-Web, JSON, compressed) through the Connect router.
import type http2 from "node:http2";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethodBiDiStreaming,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, createHandlerContext, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { contentTypeProto, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { untilAborted } from "../drain.ts";
import { clearerDecodeError } from "../request-decoding.ts";
import { Channel } from "../../common/channel.ts";
import { drained } from "../../common/drained.ts";
import { envelope, EnvelopeParser, headersFrom } from "../../common/grpc/envelope.ts";

export interface BidiLaneSpec<I extends DescMessage, O extends DescMessage> {
  method: DescMethodBiDiStreaming<I, O>;
  /** The method's implementation, as registered with the Connect router. */
  impl: (requests: AsyncIterable<MessageShape<I>>, context: HandlerContext) => AsyncIterable<MessageInitShape<O>>;
}

export interface BidiLaneOptions {
  /** Largest message accepted, in bytes (the router's readMaxBytes). */
  readMaxBytes: number;
  /** Aborted at shutdown with the error every stream ends with. */
  shutdownSignal: AbortSignal;
  contextValues: (req: http2.Http2ServerRequest) => ContextValues;
  /** An error as the client should see it (the database fault interceptor's mapping). */
  clientError: (err: unknown) => unknown;
}

/** Request headers that only the Connect router handles: deadlines and credentials (its interceptors). */
const ROUTER_HEADERS = ["grpc-timeout", "authorization", "x-iris-account-key"];
const GRPC_PROTO = /^application\/grpc(\+proto)?$/i;
/** Messages parsed but not yet taken by the implementation before the stream stops reading (flow control). */
const HIGH_WATER = 64;

export class BidiLane<I extends DescMessage, O extends DescMessage> {
  readonly path: string;

  constructor(
    private readonly spec: BidiLaneSpec<I, O>,
    private readonly options: BidiLaneOptions,
  ) {
    this.path = `/${spec.method.parent.typeName}/${spec.method.name}`;
  }

  /** True for a plain gRPC call of this method over HTTP/2; anything else goes to the Connect router. */
  accepts(req: http2.Http2ServerRequest): boolean {
    if (req.url !== this.path || req.method !== "POST" || req.httpVersionMajor !== 2) return false;
    const type = req.headers["content-type"];
    if (typeof type !== "string" || !GRPC_PROTO.test(type)) return false;
    // compressed messages: the router decompresses them
    const encoding = req.headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    return ROUTER_HEADERS.every((name) => req.headers[name] === undefined);
  }

  serve(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void {
    const { method } = this.spec;
    const clientGone = new AbortController();
    const context = createHandlerContext({
      service: method.parent,
      method,
      protocolName: "grpc",
      requestMethod: "POST",
      url: req.url,
      requestSignal: clientGone.signal,
      requestHeader: headersFrom(req.headers),
      contextValues: this.options.contextValues(req),
    });
    const input = new Channel<MessageShape<I>>();
    const parser = new EnvelopeParser(this.options.readMaxBytes);
    req.on("data", (data: Buffer) => {
      try {
        for (const bytes of parser.push(data)) input.push(decode(method.input, bytes));
      } catch (err) {
        input.close(err);
        req.pause();
        return;
      }
      // flow control: a client that sends faster than its messages are handled is read no further until they are
      if (input.queued > HIGH_WATER && !req.isPaused()) {
        req.pause();
        input.onDrained(() => req.resume());
      }
    });
    // a reset stream also "ends" its request, and says "aborted" only after: the end is read a turn later
    req.on("end", () =>
      setImmediate(() => input.close(req.aborted ? wentAway() : parser.pending ? truncated() : undefined)),
    );
    // the client reset the stream or the connection dropped: the handler sees Canceled, as through the router
    const gone = () => {
      const error = wentAway();
      clientGone.abort(error);
      input.close(error);
    };
    req.on("aborted", gone);
    res.on("close", gone);
    res.writeHead(200, { "content-type": contentTypeProto, "grpc-accept-encoding": "identity" });
    void this.#respond(input, context, res);
  }

  async #respond(
    input: AsyncIterable<MessageShape<I>>,
    context: ReturnType<typeof createHandlerContext>,
    res: http2.Http2ServerResponse,
  ): Promise<void> {
    const output = untilAborted(this.spec.impl(input, context), this.options.shutdownSignal);
    let error: ConnectError | undefined;
    try {
      for await (const message of output) {
        if (res.destroyed) break;
        if (!res.write(envelope(toBinary(this.spec.method.output, create(this.spec.method.output, message)))))
          await drained(res);
      }
    } catch (err) {
      const mapped = this.options.clientError(err);
      // as the router answers: a handler's own ConnectError as it is, anything else an internal error
      error =
        mapped instanceof ConnectError
          ? mapped
          : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
      context.abort(error);
    }
    if (res.destroyed) return;
    const trailers = setTrailerStatus(new Headers(), error);
    res.addTrailers(Object.fromEntries(trailers));
    res.end();
  }
}

function decode<I extends DescMessage>(schema: I, bytes: Uint8Array) {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    // the router's wording and code for a request that does not parse (request-decoding.ts)
    const internal = new ConnectError(
      `parse binary: ${err instanceof Error ? err.message : String(err)}`,
      Code.Internal,
    );
    throw clearerDecodeError(internal, schema) ?? internal;
  }
}

function wentAway(): ConnectError {
  return new ConnectError("the client went away", Code.Canceled);
}

function truncated(): ConnectError {
  return new ConnectError("protocol error: promised more bytes than the stream held", Code.InvalidArgument);
}
