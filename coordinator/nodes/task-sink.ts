// The receiving end of one running task on a node: the registry keeps them per node, the task table holds them.
import type { TaskChunk, TaskError, TaskResult } from "../../gen/iris/v1/node_pb.ts";

/** Where a node's messages about one task go: the orchestrator's attempt that assigned it. */
export interface TaskSink {
  chunk(chunk: TaskChunk): void;
  result(result: TaskResult): void;
  error(error: TaskError): void;
  /** The node disconnected, missed heartbeats or was replaced while running the task. */
  lost(reason: string): void;
  /** When the task took the slot (ms since the epoch): the queue's wait estimate counts from here. */
  readonly startedAt?: number;
}
