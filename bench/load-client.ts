// Closed-loop chat clients for the throughput benchmark: each has its own HTTP/2 connection, calls
// InferenceService.Chat over gRPC, counts Token events as they arrive, and starts its next chat when one ends.
import http2 from "node:http2";
import { Role } from "../gen/iris/v1/common_pb.ts";
import { ChatRequestSchema } from "../gen/iris/v1/inference_pb.ts";
import { chatEventTag, encodeFrame, FrameReader, openCall, tokenText } from "./grpc-wire.ts";

export interface ChatLoadOptions {
  url: string;
  /** Sent as x-iris-account-key: an account exempt from chat limits (UNLIMITED_ACCOUNT_KEYS). */
  accountKey: string;
  clients: number;
  /** max_tokens of each chat; the load nodes answer exactly that many tokens. */
  tokensPerChat: number;
}

export interface ChatLoadCounters {
  tokens: number;
  chats: number;
  errors: number;
  /** Sampled emit-to-receive times of stamped tokens, ms. */
  latencies: number[];
  firstError: string | undefined;
}

const emptyCounters = (): ChatLoadCounters => ({
  tokens: 0,
  chats: 0,
  errors: 0,
  latencies: [],
  firstError: undefined,
});
const AT = 0x40; // "@": a stamped token (see load-node.ts)

/** Tokens of load-node.ts's in a token event's text: its words start with a space, its stamps with "@". */
function loadTokensIn(text: Buffer): number {
  let count = 0;
  for (const byte of text) if (byte === 0x20 || byte === AT) count++;
  return count;
}

export class ChatLoad {
  counters = emptyCounters();
  #running = true;
  readonly #sessions: http2.ClientHttp2Session[] = [];
  readonly #calls = new Set<http2.ClientHttp2Stream>();
  readonly #loops: Promise<void>[] = [];

  constructor(private readonly options: ChatLoadOptions) {
    for (let i = 0; i < options.clients; i++) {
      const session = http2.connect(options.url);
      session.on("error", () => {});
      this.#sessions.push(session);
      // the first chat of each client has a random length, so that chats do not all end in step
      this.#loops.push(this.#loop(session, 1 + Math.floor(Math.random() * options.tokensPerChat)));
    }
  }

  /** Returns the counters since the last reset and starts new ones. */
  reset(): ChatLoadCounters {
    const counters = this.counters;
    this.counters = emptyCounters();
    return counters;
  }

  async #loop(session: http2.ClientHttp2Session, firstMaxTokens: number): Promise<void> {
    let maxTokens = firstMaxTokens;
    while (this.#running) {
      const error = await this.#chat(session, maxTokens);
      if (error === undefined) this.counters.chats++;
      else if (this.#running) {
        this.counters.errors++;
        this.counters.firstError ??= error;
        await new Promise((resolve) => setTimeout(resolve, 100)); // no hot loop on a failing coordinator
      }
      maxTokens = this.options.tokensPerChat;
    }
  }

  /** One chat to its end; resolves with an error description, or undefined when it ended with status 0. */
  #chat(session: http2.ClientHttp2Session, maxTokens: number): Promise<string | undefined> {
    const request = encodeFrame(ChatRequestSchema, {
      params: { messages: [{ role: Role.USER, content: "Hello there" }], maxTokens },
    });
    return new Promise((resolve) => {
      let call: http2.ClientHttp2Stream;
      try {
        call = openCall(session, "/iris.v1.InferenceService/Chat", { "x-iris-account-key": this.options.accountKey });
      } catch (err) {
        resolve(String(err));
        return;
      }
      this.#calls.add(call);
      let status: string | undefined;
      let done = false;
      const reader = new FrameReader((message) => {
        const tag = message[0];
        if (tag === chatEventTag.token) {
          const text = tokenText(message);
          // chunks queued for a stream that lags go out as one event: count the load nodes' tokens in it (each a word
          // with a leading space, or a stamp), so a window behind still counts what was relayed
          this.counters.tokens += Math.max(1, loadTokensIn(text));
          if (text[0] === AT)
            this.counters.latencies.push(performance.now() - Number.parseFloat(text.subarray(1).toString()));
        } else if (tag === chatEventTag.done) {
          done = true;
        }
      });
      call.on("response", (headers) => (status = (headers["grpc-status"] as string | undefined) ?? status));
      call.on("trailers", (trailers) => {
        status = trailers["grpc-status"] as string | undefined;
        if (status !== "0") status = `${status}: ${decodeURIComponent(String(trailers["grpc-message"] ?? ""))}`;
      });
      call.on("data", (chunk: Buffer) => reader.push(chunk));
      call.on("error", (err) => (status ??= err.message));
      call.once("close", () => {
        this.#calls.delete(call);
        if (status === "0" && done) resolve(undefined);
        else
          resolve(
            status === "0" ? "the stream ended without a done event" : (status ?? "the stream closed without a status"),
          );
      });
      call.end(request);
    });
  }

  /** Stops starting chats, cancels the running ones, closes the connections. */
  async stop(): Promise<void> {
    this.#running = false;
    for (const call of this.#calls) call.close(http2.constants.NGHTTP2_CANCEL);
    await Promise.all(this.#loops);
    for (const session of this.#sessions) session.close();
  }
}
