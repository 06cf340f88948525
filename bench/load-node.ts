// A load-generator node: speaks the real NodeService protocol over its own HTTP/2 connection (register with
// its X25519 key, heartbeats, task assign/cancel, AES-256-GCM sealed chunks, result) and emits tokens when the
// shared TokenPump says so. Sealing is the real envelope code (common/crypto), so the coordinator opens real
// ciphertext; the assignment's payload is not opened (the load node answers every prompt the same way).
// Two ways to send: a chunk a token, offering nothing while the connection pushes back (the tokens are not owed); or
// as the agent does (agent/chunk-coalescer.ts, CHUNK_INTERVAL_MS at its default of 10 ms, the pump's tick): a
// task's tokens of a tick as one chunk, and while the connection pushes back they wait and join the next one.
import { generateKeyPairSync } from "node:crypto";
import http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { deriveSessionKeys, publicKeyBytes, seal, TAG_BYTES, type SessionKeys } from "../common/crypto/envelope.ts";
import { registerProof } from "../common/crypto/register-proof.ts";
import { ConnectRequestSchema, ConnectResponseSchema, type RegisterAck } from "../gen/iris/v1/node_pb.ts";
import { encodeFrame, FrameReader, maxSealedChunkFrameBytes, openCall, writeSealedChunkFrame } from "./grpc-wire.ts";

// Typical English LLM tokens: a leading space and a short word.
const words = "the of and to in is that for it as with on this be by an".split(" ").map((w) => Buffer.from(` ${w}`));
/** Every this many tokens carries the time it was sent ("@<ms>"), so clients can sample the relay latency. */
export const stampEvery = 64;
const maxTextBytes = 24;

interface LoadTask {
  id: Buffer;
  taskId: string;
  remaining: number;
  sequence: number;
  /** Tokens sent so far (the result's usage; several a chunk when coalescing). */
  tokens: number;
  /** Tokens owed by the rate but not yet sent (fractional). */
  due: number;
  /** Coalescing: the tick at which its tokens began to wait for a connection that pushed back. */
  owedSince: number | undefined;
}

export interface LoadNodeOptions {
  url: string;
  accountKey: string;
  nodeId: string;
  slots: number;
  /** Declared speed; high, so the tier is PRO and deadlines never bind. */
  declaredTokensPerSecond?: number;
  /**
   * Chunk as the agent does: each task's tokens of a tick as one chunk; while the connection pushes back, owe them
   * and send them with the next once it is writable.
   */
  coalesce?: boolean;
}

export class LoadNode {
  readonly registered: Promise<RegisterAck>;
  readonly ended: Promise<string | undefined>;
  readonly #tasks = new Map<string, LoadTask>();
  readonly #session: http2.ClientHttp2Session;
  readonly #call: http2.ClientHttp2Stream;
  #heartbeat: NodeJS.Timeout | undefined;
  #keys: SessionKeys | undefined;
  #counter = 0;
  readonly #coalesce: boolean;
  /** Ticks on which the connection pushed back (its buffer was full) and nothing was sent. */
  blockedTicks = 0;
  /** Chunks sent so far. */
  chunksSent = 0;

  constructor(options: LoadNodeOptions) {
    this.#coalesce = options.coalesce ?? false;
    const key = generateKeyPairSync("x25519").privateKey;
    const publicKey = publicKeyBytes(key);
    this.#session = http2.connect(options.url);
    this.#session.on("error", () => {}); // reported through the call's end
    const call = (this.#call = openCall(this.#session, "/iris.v1.NodeService/Connect"));
    let resolveAck!: (ack: RegisterAck) => void;
    let rejectAck!: (error: Error) => void;
    this.registered = new Promise((resolve, reject) => ((resolveAck = resolve), (rejectAck = reject)));
    this.registered.catch(() => {});
    let status: string | undefined;
    const reader = new FrameReader((bytes) => {
      const m = fromBinary(ConnectResponseSchema, bytes).message;
      if (m.case === "registerChallenge") {
        const context = {
          nonce: m.value.nonce,
          nodeId: options.nodeId,
          nodePublicKey: publicKey,
          coordinatorPublicKey: m.value.coordinatorPublicKey,
        };
        const proof = registerProof(key, m.value.coordinatorPublicKey, context);
        call.write(encodeFrame(ConnectRequestSchema, { message: { case: "registerProof", value: { proof } } }));
      } else if (m.case === "registerAck") {
        const ack = m.value;
        this.#keys = deriveSessionKeys(key, ack.coordinatorPublicKey, {
          coordinatorPublicKey: ack.coordinatorPublicKey,
          nodePublicKey: publicKey,
          nodeId: ack.nodeId,
          sessionId: ack.sessionId,
        });
        resolveAck(ack);
        this.#heartbeat = setInterval(() => this.#heartbeatNow(), m.value.heartbeatIntervalMs);
      } else if (m.case === "taskAssign") {
        this.#tasks.set(m.value.taskId, {
          id: Buffer.from(m.value.taskId),
          taskId: m.value.taskId,
          remaining: Math.max(1, m.value.maxTokens),
          sequence: 0,
          tokens: 0,
          due: 0,
          owedSince: undefined,
        });
      } else if (m.case === "cancel") {
        this.#tasks.delete(m.value.taskId);
      }
    });
    call.on("response", (headers) => (status = (headers["grpc-status"] as string | undefined) ?? status));
    call.on("trailers", (trailers) => {
      status = trailers["grpc-status"] as string | undefined;
      if (status !== "0") status = `${status}: ${decodeURIComponent(String(trailers["grpc-message"] ?? ""))}`;
    });
    call.on("data", (chunk: Buffer) => reader.push(chunk));
    call.on("error", () => {});
    this.ended = new Promise((resolve) => {
      call.once("close", () => {
        clearInterval(this.#heartbeat);
        const reason = status === "0" ? undefined : (status ?? "the stream closed without a status");
        rejectAck(new Error(`node ${options.nodeId}: ${reason}`));
        this.#session.close();
        resolve(reason);
      });
    });
    call.write(
      encodeFrame(ConnectRequestSchema, {
        message: {
          case: "register",
          value: {
            nodeId: options.nodeId,
            accountKey: options.accountKey,
            modelName: "bench-8B-Q4_K_M",
            parameterCount: 8_000_000_000n,
            quantization: "Q4_K_M",
            contextLength: 4096,
            benchmarkTokensPerSecond: options.declaredTokensPerSecond ?? 1000,
            maxConcurrentTasks: options.slots,
            agentVersion: "bench",
            backend: "bench-load-node",
            publicKey,
          },
        },
      }),
    );
  }

  get activeTasks(): number {
    return this.#tasks.size;
  }

  #heartbeatNow(): void {
    this.#call.write(
      encodeFrame(ConnectRequestSchema, {
        message: { case: "heartbeat", value: { load: 0, activeTasks: this.#tasks.size } },
      }),
    );
  }

  /**
   * Adds `perTask` tokens owed to every running task and sends the whole ones, with a result for each task
   * that reaches its max tokens, in one write: a chunk a token, or, coalescing, one chunk a task for its tokens
   * (those of this tick and any owed while the connection pushed back). Returns the tokens sent (0 when the
   * connection pushes back).
   */
  pump(perTask: number, now: number): number {
    const keys = this.#keys;
    if (this.#tasks.size === 0 || this.#call.closed || !keys) return 0;
    if (this.#call.writableNeedDrain) {
      // the coordinator is not keeping up: offer nothing this tick rather than queue without bound; an agent that
      // coalesces keeps its tokens (as many as max tokens at most) for the next chunk
      this.blockedTicks++;
      for (const task of this.#tasks.values()) {
        if (!this.#coalesce) task.due = 0;
        else {
          task.due += perTask;
          task.owedSince ??= now;
        }
      }
      return 0;
    }
    let bytes = 0;
    for (const task of this.#tasks.values()) {
      task.due += perTask;
      bytes += Math.min(Math.floor(task.due), task.remaining) * maxSealedChunkFrameBytes(maxTextBytes + TAG_BYTES) + 64;
    }
    const buf = Buffer.allocUnsafe(bytes);
    let at = 0;
    let sent = 0;
    const finished: Buffer[] = [];
    for (const [taskId, task] of this.#tasks) {
      const n = Math.min(Math.floor(task.due), task.remaining);
      task.due -= n;
      const merged = this.#coalesce;
      for (let i = 0; i < (merged ? Math.min(n, 1) : n); i++) {
        const tokens = merged ? n : 1;
        const text = this.#chunkText(tokens, task.owedSince ?? now, now);
        const { nonce, ciphertext } = seal(keys.toCoordinator, text, {
          taskId: task.taskId,
          sequence: task.sequence,
          kind: "chunk",
        });
        // coalescing, every chunk says its tokens, as the agent's do; else one token a chunk, unsaid (read as 1)
        const count = this.#coalesce ? tokens : 0;
        at = writeSealedChunkFrame(buf, at, task.id, task.sequence++, nonce, ciphertext, count);
        this.chunksSent++;
      }
      task.owedSince = undefined;
      sent += n;
      task.tokens += n;
      task.remaining -= n;
      if (task.remaining === 0) {
        this.#tasks.delete(taskId);
        finished.push(
          encodeFrame(ConnectRequestSchema, {
            message: {
              case: "result",
              value: {
                taskId,
                usage: { promptTokens: 7, completionTokens: task.tokens },
                finishReason: "length",
                chunkCount: task.sequence,
              },
            },
          }),
        );
      }
    }
    if (at > 0 || finished.length > 0)
      this.#call.write(finished.length > 0 ? Buffer.concat([buf.subarray(0, at), ...finished]) : buf.subarray(0, at));
    return sent;
  }

  /**
   * The text of a chunk of `tokens` words. When one of them is a stamped token it leads the chunk (clients sample
   * only a Token event's head), with the time that token was owed: spread evenly from `owedSince` to `now`, so the
   * latency measured includes the time it waited in the node.
   */
  #chunkText(tokens: number, owedSince: number, now: number): Buffer {
    let stamp: Buffer | undefined;
    const parts: Buffer[] = [];
    for (let i = 1; i <= tokens; i++) {
      if (++this.#counter % stampEvery === 0 && !stamp)
        stamp = Buffer.from(`@${(owedSince + ((now - owedSince) * i) / tokens).toFixed(3)}`);
      else parts.push(words[this.#counter & 15]!);
    }
    if (tokens === 1) return stamp ?? parts[0]!;
    return Buffer.concat(stamp ? [stamp, ...parts] : parts);
  }

  /** Ends the stream the way an agent that stops does, and waits for the connection to close. */
  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    if (!this.#call.closed) this.#call.end();
    const timer = setTimeout(() => this.#session.destroy(), 5_000);
    await this.ended;
    clearTimeout(timer);
  }
}

/** Drives every node's emission from one timer: `tokensPerSecond` in total, spread evenly over the slots. */
export class TokenPump {
  #timer: NodeJS.Timeout | undefined;
  #last = performance.now();
  #perStream = 0;
  emitted = 0;

  constructor(
    private readonly nodes: LoadNode[],
    private readonly totalSlots: number,
    private readonly tickMs = 10,
  ) {}

  /** The offered rate, all streams together. */
  setRate(tokensPerSecond: number): void {
    this.#perStream = tokensPerSecond / this.totalSlots;
    if (!this.#timer) {
      this.#last = performance.now();
      this.#timer = setInterval(() => this.#tick(), this.tickMs);
    }
  }

  #tick(): void {
    const now = performance.now();
    // a late timer (a busy event loop) owes at most a few ticks, never a burst of seconds
    const seconds = Math.min(now - this.#last, 5 * this.tickMs) / 1000;
    this.#last = now;
    const perTask = this.#perStream * seconds;
    for (const node of this.nodes) this.emitted += node.pump(perTask, now);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
