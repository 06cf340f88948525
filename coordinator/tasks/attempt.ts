// One try of a task on one node: assigns it, receives the node's messages in order, and cancels it.
import { create } from "@bufbuild/protobuf";
import { Difficulty as DifficultyEnum } from "../../gen/iris/v1/common_pb.ts";
import {
  ConnectResponseSchema,
  type TaskChunk,
  type TaskError,
  type TaskPayload,
  type TaskResult,
} from "../../gen/iris/v1/node_pb.ts";
import { Channel } from "../../common/channel.ts";
import type { Difficulty } from "../db/schema.ts";
import type { LiveNode, NodeRegistry, TaskSink } from "../nodes/registry.ts";

export type AttemptEvent =
  | { kind: "chunk"; chunk: TaskChunk }
  | { kind: "result"; result: TaskResult }
  | { kind: "error"; error: TaskError }
  | { kind: "lost"; reason: string }
  | { kind: "deadline" }
  | { kind: "aborted" };

const difficultyEnum: Record<Difficulty, DifficultyEnum> = {
  SIMPLE: DifficultyEnum.SIMPLE,
  COMPLEX: DifficultyEnum.COMPLEX,
  ADVANCED: DifficultyEnum.ADVANCED,
};

export class Attempt implements TaskSink {
  readonly events = new Channel<AttemptEvent>();
  #timer: NodeJS.Timeout | undefined;
  #ended = false;

  /** Reserves a slot on `node` at once (so no other task can take it), before anything is sent. */
  constructor(
    readonly taskId: string,
    readonly node: LiveNode,
    private readonly registry: NodeRegistry,
  ) {
    node.tasks.set(taskId, this);
  }

  chunk(chunk: TaskChunk): void {
    this.events.push({ kind: "chunk", chunk });
  }
  result(result: TaskResult): void {
    this.events.push({ kind: "result", result });
  }
  error(error: TaskError): void {
    this.events.push({ kind: "error", error });
  }
  lost(reason: string): void {
    this.events.push({ kind: "lost", reason });
  }

  /** Sends the assignment; false when the node's stream is already gone. */
  assign(options: {
    difficulty: Difficulty;
    deadlineAt: number;
    maxTokens: number;
    payload: TaskPayload;
  }): boolean {
    const remaining = Math.max(0, options.deadlineAt - Date.now());
    this.#timer = setTimeout(() => this.events.push({ kind: "deadline" }), remaining);
    return this.node.send(
      create(ConnectResponseSchema, {
        message: {
          case: "taskAssign",
          value: {
            taskId: this.taskId,
            difficulty: difficultyEnum[options.difficulty],
            deadlineUnixMs: BigInt(options.deadlineAt),
            maxTokens: options.maxTokens,
            enableStreaming: true,
            payload: { case: "plain", value: options.payload },
          },
        },
      }),
    );
  }

  /** Tells the node to stop (client gone, deadline, re-route) and ends the attempt. */
  cancel(reason: string): void {
    if (this.#ended) return;
    this.node.send(create(ConnectResponseSchema, { message: { case: "cancel", value: { taskId: this.taskId, reason } } }));
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
