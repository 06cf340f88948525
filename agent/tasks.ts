// Runs the coordinator's tasks on the backend: concurrently up to capacity, chunks in sequence, cancel honoured,
// assignments refused while the node is paused, and running tasks handed back when it quits.
import type { Logger } from "pino";
import { Difficulty } from "../gen/iris/v1/common_pb.ts";
import { createValidator } from "@bufbuild/protovalidate";
import { TaskErrorReason, TaskPayloadSchema, type TaskAssign, type TaskPayload } from "../gen/iris/v1/node_pb.ts";
import { EnvelopeError, openMessage, type SessionKeys } from "../common/crypto/envelope.ts";
import { BackendError, type Backend } from "./backends/backend.ts";
import type { OutgoingMessage } from "./outgoing-message.ts";
import { ChunkCoalescer, type OutboxBacklog } from "./chunk-coalescer.ts";
import type { TaskOutcome } from "./snapshot.ts";
import type { AgentState } from "./state.ts";
import { chatRoleFromProto } from "../common/vocabulary.ts";

type Send = (message: OutgoingMessage) => void;

/** Payload rules (lengths, ranges) are checked after opening: on the wire only the ciphertext is visible. */
const validator = createValidator();

const errorReasons = {
  backend_failed: TaskErrorReason.BACKEND_FAILED,
  model_unavailable: TaskErrorReason.MODEL_UNAVAILABLE,
  context_too_long: TaskErrorReason.CONTEXT_TOO_LONG,
} as const;

export interface RunningTask {
  taskId: string;
  startedAt: number;
  /** Tokens generated so far (a chunk may carry several); at the end, the usage sent to the coordinator. */
  tokens: number;
  maxTokens: number;
}

export interface TaskRunnerOptions {
  /** Where the terminal UI reads live tasks and totals from. */
  state?: AgentState;
  /** While true, assignments are refused (OVERLOADED) so the coordinator routes them elsewhere. */
  isPaused?: () => boolean;
  /** The queue `send` feeds: while it is backed up, a task's tokens wait in one chunk until the writer drains it. */
  outbox?: OutboxBacklog;
  /** A task's chunks go out at most one each this many ms (CHUNK_INTERVAL_MS); undefined or 0: one each turn. */
  chunkIntervalMs?: number;
}

export class TaskRunner {
  readonly #running = new Map<string, { controller: AbortController; task: RunningTask; handedBack: boolean }>();
  readonly #idleWaiters = new Set<() => void>();

  constructor(
    private readonly backend: Backend,
    private readonly send: Send,
    private readonly logger: Logger,
    private readonly capacity: number,
    /** The keys agreed with the coordinator for this connection; payloads travel sealed under them. */
    private readonly keys: SessionKeys,
    private readonly options: TaskRunnerOptions = {},
  ) {}

  get active(): number {
    return this.#running.size;
  }

  running(): RunningTask[] {
    return [...this.#running.values()].map((r) => r.task);
  }

  /** Resolves once no task runs (at once when none does). */
  idle(): Promise<void> {
    if (this.#running.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.add(resolve));
  }

  /** Starts a task; refuses it (OVERLOADED) when the node is full or paused, which the coordinator re-routes. */
  start(assign: TaskAssign): Promise<void> {
    const taskId = assign.taskId;
    const refusal = this.options.isPaused?.()
      ? "the node is paused"
      : this.#running.size >= this.capacity || this.#running.has(taskId)
        ? "the node is at capacity"
        : undefined;
    if (refusal) {
      this.send(error(taskId, TaskErrorReason.OVERLOADED, refusal));
      this.logger.info({ taskId, reason: refusal }, "task refused");
      this.options.state?.taskRefused(taskId, refusal);
      return Promise.resolve();
    }
    const controller = new AbortController();
    const task: RunningTask = { taskId, startedAt: Date.now(), tokens: 0, maxTokens: assign.maxTokens };
    const entry = { controller, task, handedBack: false };
    this.#running.set(taskId, entry);
    const difficulty = assign.difficulty === Difficulty.UNSPECIFIED ? "" : (Difficulty[assign.difficulty] ?? "");
    this.options.state?.taskStarted({ taskId, difficulty, maxTokens: assign.maxTokens });
    return this.#run(assign, controller.signal, task).then((ran) => {
      const outcome: TaskOutcome = entry.handedBack ? "handed_back" : ran;
      this.#running.delete(taskId);
      // a completed task, a busy node's every task, at debug: the line is a write on the thread that sends the next
      // task's messages (0.1 ms a task one at a time, bench:peers); one that did not complete is worth an info line
      const line = { taskId, outcome, tokens: task.tokens, ms: Date.now() - task.startedAt };
      if (outcome === "completed") this.logger.debug(line, "task ended");
      else this.logger.info(line, "task ended");
      this.options.state?.taskEnded(taskId, outcome);
      if (this.#running.size > 0) return;
      for (const wake of this.#idleWaiters) wake();
      this.#idleWaiters.clear();
    });
  }

  /** Aborts a task's backend request; nothing more is sent for it. */
  cancel(taskId: string): void {
    this.#running.get(taskId)?.controller.abort();
  }

  cancelAll(): void {
    for (const { controller } of this.#running.values()) controller.abort();
  }

  /**
   * Gives every running task back to the coordinator (TaskError CANCELLED, which it re-routes to another node,
   * continuing after the text already streamed) and stops them. Used when the node quits.
   */
  handBackAll(message: string): void {
    for (const entry of this.#running.values()) {
      if (entry.handedBack) continue;
      entry.handedBack = true;
      // abort first, in the same tick: no chunk of this task can follow the error
      entry.controller.abort();
      this.send(error(entry.task.taskId, TaskErrorReason.CANCELLED, message));
    }
  }

  /** The task's payload opened and validated, or why it can't be (the coordinator hears BAD_PAYLOAD). */
  #openPayload(assign: TaskAssign): TaskPayload | string {
    if (assign.payload.case !== "sealed") return "the payload must be sealed on an encrypted connection";
    try {
      const payload = openMessage(this.keys.toNode, TaskPayloadSchema, assign.payload.value, {
        taskId: assign.taskId,
        sequence: 0,
        kind: "assign",
      });
      const verdict = validator.validate(TaskPayloadSchema, payload);
      return verdict.kind === "valid"
        ? payload
        : `invalid payload: ${verdict.kind === "invalid" ? verdict.error.message : "unknown"}`;
    } catch (err) {
      if (err instanceof EnvelopeError) return `payload does not open: ${err.message}`;
      throw err;
    }
  }

  /** Runs one task to its end; never throws. */
  async #run(
    assign: TaskAssign,
    signal: AbortSignal,
    task: RunningTask,
  ): Promise<"completed" | "cancelled" | "failed"> {
    const taskId = assign.taskId;
    const payload = this.#openPayload(assign);
    if (typeof payload === "string") {
      this.send(error(taskId, TaskErrorReason.BAD_PAYLOAD, payload));
      return "failed";
    }
    const messages = payload.messages.flatMap((m) => {
      const role = chatRoleFromProto(m.role);
      return role ? [{ role, content: m.content }] : [];
    });
    const started = Date.now();
    let firstTokenAt: number | undefined;
    const state = this.options.state;
    const chunks = new ChunkCoalescer(taskId, this.keys, this.send, signal, {
      outbox: this.options.outbox,
      onSent: state && ((n) => state.taskToken(taskId, n)),
      streaming: assign.enableStreaming,
      intervalMs: this.options.chunkIntervalMs,
    });
    try {
      const stream = this.backend.generate({
        messages,
        assistantPrefix: payload.assistantPrefix || undefined,
        maxTokens: assign.maxTokens,
        temperature: payload.temperature,
        seed: payload.seed === undefined ? undefined : Number(payload.seed),
        model: payload.model || undefined,
        signal,
        whole: !assign.enableStreaming,
      });
      let next = await stream.next();
      while (!next.done) {
        if (signal.aborted) break;
        firstTokenAt ??= Date.now();
        const { text, tokens } = next.value;
        task.tokens += tokens;
        chunks.add(text, tokens);
        next = await stream.next();
      }
      // the rest as the last chunk, or (streaming off) sealed for the result, which then carries the whole answer
      const wholeText = chunks.finish();
      if (signal.aborted) return "cancelled"; // cancelled by the coordinator: it expects nothing more
      const result = next.done ? next.value : undefined;
      const finished = Date.now();
      const generationMs = firstTokenAt ? finished - firstTokenAt : 0;
      // One count end to end: what the coordinator records is what the terminal UI shows, never above the budget.
      const completion = Math.min(result?.completionTokens ?? task.tokens, assign.maxTokens);
      task.tokens = completion;
      this.options.state?.taskUsage(taskId, completion);
      this.send({
        case: "result",
        value: {
          taskId,
          usage: { promptTokens: result?.promptTokens ?? 0, completionTokens: completion },
          timings: {
            timeToFirstTokenMs: (firstTokenAt ?? finished) - started,
            totalMs: finished - started,
            tokensPerSecond: generationMs > 0 ? (completion * 1000) / generationMs : 0,
          },
          finishReason: result?.finishReason ?? "stop",
          chunkCount: chunks.sent,
          ...(wholeText ? { content: { case: "sealed", value: wholeText } as const } : {}),
        },
      });
      return "completed";
    } catch (err) {
      if (signal.aborted) return "cancelled";
      // the text streamed before the failure reaches the coordinator first: a failover continues after it
      chunks.flush();
      const reason = err instanceof BackendError ? errorReasons[err.reason] : TaskErrorReason.BACKEND_FAILED;
      this.logger.warn({ taskId, err }, "task failed on the backend");
      this.send(error(taskId, reason, err instanceof Error ? err.message : String(err)));
      return "failed";
    } finally {
      chunks.discard();
    }
  }
}

function error(taskId: string, reason: TaskErrorReason, message: string): OutgoingMessage {
  return { case: "error", value: { taskId, reason, message: message.slice(0, 4000) } };
}
