// One try of a task on one node: assigns it, receives the node's messages in order, and cancels it.
import { create } from "@bufbuild/protobuf";
import {
  ConnectResponseSchema,
  TaskErrorReason,
  TaskPayloadSchema,
  type TaskChunk,
  type TaskError,
  type TaskPayload,
  type TaskResult,
} from "../../gen/iris/v1/node_pb.ts";
import { Channel } from "../../common/channel.ts";
import { EnvelopeError, openText, sealMessage } from "../../common/crypto/envelope.ts";
import { ReplayGuard } from "../../common/crypto/replay-guard.ts";
import type { Difficulty } from "../../common/vocabulary.ts";
import { speedSample } from "../nodes/capability.ts";
import type { AssignSent, LiveNode, NodeRegistry } from "../nodes/registry.ts";
import type { TaskSink } from "../nodes/task-sink.ts";
import { estimateTokens } from "./division/chunking.ts";
import { difficultyToProto } from "../../common/vocabulary.ts";

export type AttemptEvent =
  | { kind: "chunk"; chunk: TaskChunk }
  | { kind: "result"; result: TaskResult }
  | { kind: "error"; error: TaskError }
  | { kind: "lost"; reason: string }
  | { kind: "deadline" }
  | { kind: "aborted" };

/** What a node sent, opened and checked: the text, or why it is an invalid response. */
export type Opened = { ok: true; text: string } | { ok: false; reason: string };

/** The largest text one chunk may carry once opened (the proto's limit on clear text). */
const maxChunkText = 1_048_576;

export class Attempt implements TaskSink {
  readonly events = new Channel<AttemptEvent>();
  /** Chunks in order and once each, then one result: anything else is a replay or a forgery. */
  readonly #guard = new ReplayGuard();
  #timer: NodeJS.Timeout | undefined;
  #ended = false;
  // what the coordinator measures of the node's answer (docs/concepts/tiers.md, "How capability is verified"); times
  // are taken as
  // messages arrive, not as they are opened: a slow client holds the opening back, never the node's speed
  readonly #solo: boolean;
  #assignedAt = 0;
  #promptText = "";
  #maxTokens = 0;
  #firstChunkAt: number | undefined;
  #chunks = 0;
  #resultAt: number | undefined;
  #soloAtResult = false;
  /** Whether the node was asked to stream chunks (enable_streaming). */
  #streaming = true;
  #answerBytes = 0;
  /** When the slot was taken (TaskSink.startedAt): the queue's wait estimate counts a running task from here. */
  readonly startedAt: number;

  /** Reserves a slot on `node` at once (so no other task can take it), before anything is sent. */
  constructor(
    readonly taskId: string,
    readonly node: LiveNode,
    private readonly registry: NodeRegistry,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
    node.tasks.set(taskId, this);
    this.#solo = node.tasks.size === 1;
  }

  chunk(chunk: TaskChunk): void {
    this.#firstChunkAt ??= this.now();
    this.#chunks++;
    this.events.push({ kind: "chunk", chunk });
  }
  result(result: TaskResult): void {
    this.#resultAt ??= this.now();
    this.#soloAtResult = this.node.tasks.size === 1;
    this.events.push({ kind: "result", result });
  }
  error(error: TaskError): void {
    if (error.reason === TaskErrorReason.CONTEXT_TOO_LONG && this.#promptText !== "" && !this.#ended) {
      // the most the request could need: servers that keep room for the answer refuse prompt + max_tokens
      this.node.measured.refused(estimateTokens(this.#promptText) + this.#maxTokens);
      this.registry.measured(this.node);
    }
    this.events.push({ kind: "error", error });
  }
  lost(reason: string): void {
    this.events.push({ kind: "lost", reason });
  }

  /** Sends the assignment; as LiveNode.sendAssign says whether it reached the node. */
  assign(options: {
    difficulty: Difficulty;
    deadlineAt: number;
    maxTokens: number;
    payload: TaskPayload;
    /** False: the node is asked for the whole answer in its result (enable_streaming off). */
    streaming?: boolean;
  }): Promise<AssignSent> {
    this.#assignedAt = this.now();
    this.#streaming = options.streaming !== false;
    this.#maxTokens = options.maxTokens;
    this.#promptText = options.payload.messages.map((m) => m.content).join("\n") + options.payload.assistantPrefix;
    const remaining = Math.max(0, options.deadlineAt - this.#assignedAt);
    this.#timer = setTimeout(() => this.events.push({ kind: "deadline" }), remaining);
    return this.node.sendAssign(
      create(ConnectResponseSchema, {
        message: {
          case: "taskAssign",
          value: {
            taskId: this.taskId,
            difficulty: difficultyToProto[options.difficulty],
            deadlineUnixMs: BigInt(options.deadlineAt),
            maxTokens: options.maxTokens,
            enableStreaming: this.#streaming,
            payload: {
              case: "sealed",
              value: sealMessage(this.node.keys.toNode, TaskPayloadSchema, options.payload, {
                taskId: this.taskId,
                sequence: 0,
                kind: "assign",
              }),
            },
          },
        },
      }),
    );
  }

  /** Opens and checks a chunk: sealed for the coordinator, the next in sequence, within the size limit. */
  openChunk(chunk: TaskChunk): Opened {
    if (chunk.content.case !== "sealed")
      return { ok: false, reason: "chunk text sent in clear on an encrypted connection" };
    const sealed = chunk.content.value;
    return this.#open(() => {
      const text = openText(this.node.keys.toCoordinator, sealed, {
        taskId: this.taskId,
        sequence: chunk.sequence,
        kind: "chunk",
      });
      const verdict = this.#guard.accept("chunk", chunk.sequence);
      if (!verdict.ok) return verdict;
      this.#answerBytes += Buffer.byteLength(text);
      return text;
    });
  }

  /** Checks a result (it must follow the last chunk) and opens its text when it carries one. */
  openResult(result: TaskResult): Opened {
    if (result.content.case === "text")
      return { ok: false, reason: "result text sent in clear on an encrypted connection" };
    return this.#open(() => {
      const text =
        result.content.case === "sealed"
          ? openText(this.node.keys.toCoordinator, result.content.value, {
              taskId: this.taskId,
              sequence: result.chunkCount,
              kind: "result",
            })
          : "";
      const verdict = this.#guard.accept("result", result.chunkCount);
      if (!verdict.ok) return verdict;
      this.#answerBytes += Buffer.byteLength(text);
      this.#measure(result);
      return text;
    });
  }

  /** A valid result: the answer's speed sample and the context it held go to the node's measurements. */
  #measure(result: TaskResult): void {
    if (result.finishReason === "cancelled") return;
    const now = this.#resultAt ?? this.now();
    const completionTokens = result.usage?.completionTokens ?? 0;
    const speed = speedSample({
      completionTokens,
      answerBytes: this.#answerBytes,
      chunks: this.#chunks,
      generationMs: this.#firstChunkAt === undefined ? 0 : now - this.#firstChunkAt,
      responseMs: now - this.#assignedAt,
      // an answer sent whole says nothing of the generation speed (its time holds the prompt's): no sample
      solo: this.#solo && this.#soloAtResult && (this.#streaming || this.#chunks >= 2),
    });
    // the node's counts, capped by bytes the coordinator saw: no token is shorter than a byte
    const held = Math.min(
      (result.usage?.promptTokens ?? 0) + completionTokens,
      Buffer.byteLength(this.#promptText) + this.#answerBytes,
    );
    const changed = this.node.measured.answered(speed, held);
    this.node.served(now - this.#assignedAt);
    // the tier follows the speed samples: a whole answer (no sample, a context already proven) leaves it as it is
    if (changed) this.registry.measured(this.node);
  }

  #open(read: () => string | { ok: false; reason: string }): Opened {
    try {
      const text = read();
      if (typeof text !== "string") return text;
      if (text.length > maxChunkText)
        return { ok: false, reason: `text of ${text.length} characters exceeds ${maxChunkText}` };
      return { ok: true, text };
    } catch (err) {
      if (err instanceof EnvelopeError) return { ok: false, reason: `payload does not open: ${err.message}` };
      throw err;
    }
  }

  /** Tells the node to stop (client gone, deadline, re-route) and ends the attempt. */
  cancel(reason: string): void {
    if (this.#ended) return;
    this.node.send(
      create(ConnectResponseSchema, { message: { case: "cancel", value: { taskId: this.taskId, reason } } }),
    );
    this.end();
  }

  /** Frees the node's slot; later messages about the task from the node are ignored. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    clearTimeout(this.#timer);
    this.events.close();
    if (this.node.tasks.get(this.taskId) === this) {
      this.node.tasks.delete(this.taskId);
      this.registry.notifyCapacity();
    }
  }
}
