// A lean gRPC path for a streaming method (agents' NodeService.Connect, users' InferenceService.Chat): length-prefixed
// messages read from the HTTP/2 stream's data and written as they come, without connect-es's stacked async-iterable
// pipeline (about a third of the coordinator's CPU per relayed chunk and most of an idle node's heap). A lane either
// runs the router's interceptors itself (serverStreamLane: credentials, validation, database faults as the router
// would) or takes only calls that need none (bidiLane: a node proves its key in the stream). The same implementation
// serves every other protocol (Connect, gRPC-Web, JSON, compressed) and calls with a deadline through the router.
import type http2 from "node:http2";
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type DescMethodBiDiStreaming,
  type DescMethodServerStreaming,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createHandlerContext,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
} from "@connectrpc/connect";
import { contentTypeProto, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { untilAborted } from "../drain.ts";
import { clearerDecodeError } from "../request-decoding.ts";
import { Channel } from "../../common/channel.ts";
import { drained } from "../../common/drained.ts";
import { envelope, EnvelopeParser, headersFrom } from "../../common/grpc/envelope.ts";

type Messages<O extends DescMessage> = AsyncIterable<MessageInitShape<O>>;

export interface LaneSpec<I extends DescMessage, O extends DescMessage> {
  method: DescMethodBiDiStreaming<I, O> | DescMethodServerStreaming<I, O>;
  /** The request messages in, the response messages out (a promise of them while interceptors decide). */
  call: (requests: AsyncIterable<MessageShape<I>>, context: HandlerContext) => Messages<O> | Promise<Messages<O>>;
  /** The call runs the router's interceptors itself: calls with credentials take the lane too. */
  intercepted?: boolean;
}

/** A bidi-streaming method's lane for calls that need no interceptor (no credentials; the handler checks its own). */
export function bidiLane<I extends DescMessage, O extends DescMessage>(
  method: DescMethodBiDiStreaming<I, O>,
  impl: (requests: AsyncIterable<MessageShape<I>>, context: HandlerContext) => Messages<O>,
): LaneSpec<I, O> {
  return { method, call: impl };
}

/** A server-streaming method's lane that runs `interceptors` (the router's, outermost first) as the router does. */
export function serverStreamLane<I extends DescMessage, O extends DescMessage>(
  method: DescMethodServerStreaming<I, O>,
  impl: (request: MessageShape<I>, context: HandlerContext) => Messages<O>,
  interceptors: readonly Interceptor[],
): LaneSpec<I, O> {
  type Call = (req: StreamRequest<I, O>) => Promise<StreamResponse<I, O>>;
  return {
    method,
    intercepted: true,
    async call(requests, context) {
      const invoke: Call = async (req) => ({
        stream: true,
        service: method.parent,
        method,
        header: context.responseHeader,
        trailer: context.responseTrailer,
        message: impl(await single(req.message), {
          ...context,
          service: req.service,
          requestHeader: req.header,
          signal: req.signal,
          values: req.contextValues,
        }) as AsyncIterable<MessageShape<O>>,
      });
      const next = interceptors.reduceRight<Call>(
        (inner, interceptor) => interceptor(inner as never) as unknown as Call,
        invoke,
      );
      const response = await next({
        stream: true,
        service: method.parent,
        method,
        requestMethod: "POST",
        url: context.url,
        signal: context.signal,
        header: context.requestHeader,
        contextValues: context.values,
        message: requests,
      });
      return response.message;
    },
  };
}

/** The one request of a server-streaming call, as the router reads it (its wording and code). */
async function single<T>(messages: AsyncIterable<T>): Promise<T> {
  const it = messages[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done === true)
    throw new ConnectError("protocol error: missing input message for server-streaming method", Code.Unimplemented);
  const second = await it.next();
  if (second.done !== true)
    throw new ConnectError(
      "protocol error: received extra input message for server-streaming method",
      Code.Unimplemented,
    );
  return first.value;
}

export interface LaneOptions {
  /** Largest message accepted, in bytes (the router's readMaxBytes). */
  readMaxBytes: number;
  /** Aborted at shutdown with the error every stream ends with. */
  shutdownSignal: AbortSignal;
  contextValues: (req: http2.Http2ServerRequest) => ContextValues;
  /** An error as the client should see it (the database fault interceptor's mapping). */
  clientError: (err: unknown) => unknown;
}

/** Request headers that only the Connect router handles: deadlines always, credentials unless the lane intercepts. */
const DEADLINE_HEADER = "grpc-timeout";
const CREDENTIAL_HEADERS = ["authorization", "x-iris-account-key"];
const GRPC_PROTO = /^application\/grpc(\+proto)?$/i;
/** Messages parsed but not yet taken by the implementation before the stream stops reading (flow control). */
const HIGH_WATER = 64;

export class GrpcLane<I extends DescMessage, O extends DescMessage> {
  readonly path: string;

  constructor(
    private readonly spec: LaneSpec<I, O>,
    private readonly options: LaneOptions,
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
    if (req.headers[DEADLINE_HEADER] !== undefined) return false;
    return this.spec.intercepted === true || CREDENTIAL_HEADERS.every((name) => req.headers[name] === undefined);
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
    let error: ConnectError | undefined;
    try {
      const output = untilAborted(await this.spec.call(input, context), this.options.shutdownSignal);
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
