// One chat request's records as a coordinator writes them, for the benchmarks that measure what the records cost
// (bench/journal.ts, bench/peers-lean.ts): the task created and assigned before its assign goes out; its first token,
// its node's reputation outcome and its end after the answer. The same calls, in the same order, as the chat path's.
import type { Difficulty } from "../common/vocabulary.ts";
import type { ReputationRecorder } from "../coordinator/reputation/recorder.ts";
import type { TaskJournal } from "../coordinator/tasks/journal.ts";
import { completionOf, type FixtureNode } from "../test/support/node-rows.ts";

export class RequestRecords {
  constructor(
    private readonly journal: TaskJournal,
    /** undefined: the task records alone, without the node's outcome. */
    private readonly recorder: ReputationRecorder | undefined,
    private readonly node: FixtureNode,
  ) {}

  /** Before the assign: the task created, then assigned to the node. */
  started(taskId: string, difficulty: Difficulty = "SIMPLE"): void {
    const { journal, node } = this;
    journal.created({ id: taskId, difficulty, max_tokens: 16, created_at: new Date() });
    journal.update(taskId, "assigned", { node_id: node.id, tier: "MID", attempt: 1, assigned_at: new Date() }, node.id);
  }

  /** After the answer: its first token, the node's outcome and the task's end. */
  ended(taskId: string, tokens = 16): void {
    const { journal, node } = this;
    const at = new Date();
    journal.update(taskId, "streaming", { first_token_at: at, ttft_ms: 1 }, node.id);
    this.recorder?.record(completionOf(node, taskId));
    journal.update(taskId, "completed", { completion_tokens: tokens, completed_at: at, total_ms: 1 }, node.id);
  }
}
