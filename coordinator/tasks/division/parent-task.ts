// A divided request's own row (ParentTask): accepted when its first part gets a node, streaming from the first
// token, completed with the usage of the parts its answer used, or failed; the done event the client gets.
import { Code, ConnectError } from "@connectrpc/connect";
import type { DivisionMode } from "../../../common/vocabulary.ts";
import type { LiveNode } from "../../nodes/registry.ts";
import type { ChatEvent } from "../chat.ts";
import type { TaskJournal } from "../journal.ts";
import type { PartResult } from "../part-spec.ts";
import type { DividedTask, DivisionContext } from "./divided-task.ts";

/**
 * The divided request's own row: queued → assigned → streaming → completed (usage summed over the parts the
 * answer used) or failed with the reason. It names no node and no tier (its parts' rows do), so payouts,
 * leaderboards and speed statistics count each part's work once.
 */
export class ParentTask {
  #accepted = false;
  #settled = false;
  #firstTokenAt: number | undefined;
  readonly #journal: TaskJournal;
  readonly #now: () => number;

  constructor(
    ctx: Pick<DivisionContext, "journal" | "now">,
    readonly task: DividedTask,
    readonly mode: DivisionMode,
  ) {
    this.#journal = ctx.journal;
    this.#now = ctx.now;
    this.#journal.created({
      id: task.taskId,
      division_mode: mode,
      difficulty: task.difficulty,
      classifier: task.classifier,
      account_id: task.input.accountId ?? null,
      client_address: task.input.clientAddress ?? null,
      max_tokens: task.maxTokens,
    });
  }

  get accepted(): boolean {
    return this.#accepted;
  }

  /** The accepted event, the first time a part of the task gets a node. */
  accept(node: LiveNode): ChatEvent | undefined {
    if (this.#accepted) return undefined;
    this.#accepted = true;
    const { taskId, difficulty, classifier } = this.task;
    this.#journal.update(taskId, "assigned", { assigned_at: new Date(this.#now()) }, node.id);
    return {
      type: "accepted",
      taskId,
      difficulty,
      tier: node.tier,
      nodeId: node.id,
      model: node.capabilities.modelName,
      classifier,
      divisionMode: this.mode,
    };
  }

  /** A token event for the client; the first one marks the task streaming. */
  token(text: string, nodeId: string | null): ChatEvent {
    if (this.#firstTokenAt === undefined) {
      this.#firstTokenAt = this.#now();
      this.#journal.update(
        this.task.taskId,
        "streaming",
        { first_token_at: new Date(this.#firstTokenAt), ttft_ms: this.#firstTokenAt - this.task.started },
        nodeId,
      );
    }
    return { type: "token", text };
  }

  /** Records completion and returns the done event; usage is summed over `counted`, timings are the user's. */
  complete(last: PartResult, counted: PartResult[], nodeIds: string[], verified: boolean): ChatEvent {
    this.#settled = true;
    const finished = this.#now();
    const promptTokens = counted.reduce((sum, r) => sum + r.promptTokens, 0);
    const completionTokens = counted.reduce((sum, r) => sum + r.completionTokens, 0);
    const firstTokenAt = this.#firstTokenAt ?? finished;
    const generationMs = finished - firstTokenAt;
    this.#journal.update(
      this.task.taskId,
      "completed",
      {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        completed_at: new Date(finished),
        total_ms: finished - this.task.started,
      },
      last.node.id,
      verified ? "verified by a majority" : undefined,
    );
    return {
      type: "done",
      taskId: this.task.taskId,
      promptTokens,
      completionTokens,
      ttftMs: firstTokenAt - this.task.started,
      totalMs: finished - this.task.started,
      tokensPerSecond: generationMs > 0 ? (completionTokens * 1000) / generationMs : 0,
      nodeId: last.node.id,
      nodeIds,
      finishReason: last.finishReason,
      verified,
    };
  }

  /** Records the failure (or the client's cancel) and returns the error to throw. */
  fail(err: unknown): ConnectError {
    this.#settled = true;
    const error = ConnectError.from(err);
    const cancelled = error.code === Code.Canceled || this.task.input.signal.aborted;
    const at = this.#now();
    this.#journal.update(
      this.task.taskId,
      cancelled ? "cancelled" : "failed",
      {
        completed_at: new Date(at),
        total_ms: at - this.task.started,
        failure_reason: cancelled ? null : error.rawMessage,
      },
      null,
      error.rawMessage,
    );
    return error;
  }

  /** In a finally: a task left neither completed nor failed was abandoned by its consumer (client gone). */
  settle(): void {
    if (!this.#settled) this.fail(new ConnectError("the client stopped reading the answer", Code.Canceled));
  }
}
