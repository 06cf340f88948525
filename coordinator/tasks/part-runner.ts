// One part of a task, in every mode: its own task row, a node (at once or after the queue), and failover — an
// attempt that fails moves to the next node, continuing after the text already relayed, up to maxAttempts nodes.
// A single-mode request is one part; the divided modes, spot checks and canaries run several.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { NodeRegistry } from "../nodes/registry.ts";
import type { TaskOutcomeInput } from "../reputation/outcomes.ts";
import type { Attempt } from "./attempt.ts";
import type { TaskJournal } from "./journal.ts";
import { NodeAcquirer, type QueueConfig, type QueuedSince } from "./node-acquirer.ts";
import type { PartEvent, PartResult, PartSpec } from "./part-spec.ts";
import type { QueuePeers } from "./queue.ts";
import type { DifficultyTimeouts, RouteRequest } from "./router.ts";
import { runAttempt, type AttemptDeps, type PartProgress } from "./run-attempt.ts";

export interface PartRunnerConfig {
  queue: QueueConfig;
  timeoutsMs: DifficultyTimeouts;
  /** Nodes tried for one part before it fails. */
  maxAttempts: number;
}

export interface PartRunnerDeps {
  registry: NodeRegistry;
  journal: TaskJournal;
  config: PartRunnerConfig;
  logger: Logger;
  /** Counts relayed tokens for the network's tokens/s figure. */
  throughput?: { record(tokens?: number): void };
  /** Hears what each node did with a task (the reputation rules). */
  outcomes?: { record(input: TaskOutcomeInput): void };
  /** The other coordinators' waiting requests (a cluster): positions and free nodes are shared with them. */
  queuePeers?: QueuePeers;
  /** The clock (ms since the epoch); Date.now by default. */
  now?: () => number;
}

export class PartRunner {
  readonly #nodes: NodeAcquirer;
  readonly #attempts: AttemptDeps;
  readonly #journal: TaskJournal;
  readonly #logger: Logger;
  readonly #maxAttempts: number;
  readonly #now: () => number;

  constructor(deps: PartRunnerDeps) {
    const { registry, journal, config, throughput, outcomes } = deps;
    this.#now = deps.now ?? Date.now;
    this.#journal = journal;
    this.#logger = deps.logger;
    this.#maxAttempts = config.maxAttempts;
    this.#nodes = new NodeAcquirer({ registry, queue: config.queue, queuePeers: deps.queuePeers, now: this.#now });
    this.#attempts = { registry, journal, timeoutsMs: config.timeoutsMs, throughput, outcomes, now: this.#now };
  }

  get queueLength(): number {
    return this.#nodes.queueLength;
  }

  /** Writes the part's row (queued). Separate from run() so a parent's row can precede its parts'. */
  record(spec: PartSpec): void {
    this.#journal.created({
      id: spec.taskId,
      parent_id: spec.parentId ?? null,
      division_mode: spec.mode,
      difficulty: spec.difficulty,
      classifier: spec.classifier,
      account_id: spec.accountId ?? null,
      client_address: spec.clientAddress ?? null,
      max_tokens: spec.maxTokens,
    });
  }

  /** Closes the row of a recorded part that will never run (its parent ended first). */
  abandon(spec: PartSpec, reason: string): void {
    const at = this.#now();
    this.#journal.update(
      spec.taskId,
      "cancelled",
      { completed_at: new Date(at), total_ms: Math.max(0, at - spec.started) },
      null,
      reason,
    );
  }

  /**
   * Runs the part: yields queue positions, each assignment and the tokens as they arrive; returns the whole
   * answer, or throws (the row is then failed or cancelled with the reason). The row must be recorded first.
   */
  async *run(spec: PartSpec): AsyncGenerator<PartEvent, PartResult, undefined> {
    const { taskId, started } = spec;
    const journal = this.#journal;
    const request: RouteRequest = {
      difficulty: spec.difficulty,
      model: spec.model,
      exclude: spec.exclude ?? new Set(),
      only: spec.only,
      sameModel: spec.sameModel,
      reputationAbove: spec.reputationAbove,
      context: spec.context,
    };
    const exclude = request.exclude as Set<string>;
    const progress: PartProgress = { streamed: [], tokensBefore: 0, firstTokenAt: undefined };
    const { streamed } = progress;
    const nodeIds: string[] = [];
    let attempt: Attempt | undefined;
    const queued: QueuedSince = {};
    const onAbort = () => attempt?.events.push({ kind: "aborted" });
    spec.signal.addEventListener("abort", onAbort);
    try {
      // an abort before the listener (the client left while the request was classified or waited in its group)
      // fires no event: without this the part would wait in the queue, or run on a node, for nobody
      if (spec.signal.aborted) throw new ConnectError("the client cancelled the request", Code.Canceled);
      for (let tries = 1; ; tries++) {
        attempt = yield* this.#nodes.acquire(taskId, request, spec, queued);
        const node = attempt.node;
        nodeIds.push(node.id);
        if (spec.distinct) exclude.add(node.id);
        const outcome = yield* runAttempt(this.#attempts, attempt, spec, request, tries, progress);
        if (outcome.kind === "unassigned") {
          // a node still connected was only busy at its home coordinator (another took the slot first): not excluded,
          // unless this task cannot reach it at all (too large for the cluster bus)
          if (!node.connected || outcome.unreachable) exclude.add(node.id);
          if (outcome.unreachable && node.connected && !this.#nodes.anyEligible(request))
            throw new ConnectError(
              "the request is too large to pass to a node on another coordinator of the cluster (more than the " +
                "cluster bus takes in one message), and no node connected to this coordinator can take it",
              Code.ResourceExhausted,
            );
          continue;
        }
        queued.since = undefined;
        if (outcome.kind === "completed") {
          const { completedAt } = outcome;
          if (spec.reward === "now") outcome.judge("completed");
          journal.update(
            taskId,
            "completed",
            {
              prompt_tokens: outcome.promptTokens,
              completion_tokens: outcome.completionTokens,
              completed_at: new Date(completedAt),
              total_ms: completedAt - started,
            },
            node.id,
          );
          return {
            taskId,
            text: streamed.join(""),
            pieces: streamed,
            promptTokens: outcome.promptTokens,
            completionTokens: outcome.completionTokens,
            finishReason: outcome.finishReason,
            node,
            nodeIds,
            firstTokenAt: progress.firstTokenAt,
            completedAt,
            judge: outcome.judge,
          };
        }
        if (outcome.kind === "fatal") throw outcome.error;
        // the task's id in the line itself: a child logger made for every request would serve this line only
        this.#logger.warn(
          { taskId, nodeId: node.id, reason: outcome.reason, streamedChars: streamed.join("").length },
          "re-routing the task",
        );
        journal.note(taskId, streamed.length > 0 ? "streaming" : "queued", node.id, `re-routed: ${outcome.reason}`);
        exclude.add(node.id);
        if (tries >= this.#maxAttempts) {
          throw new ConnectError(`the task failed on ${tries} nodes; last: ${outcome.reason}`, Code.Unavailable);
        }
      }
    } catch (err) {
      const error = ConnectError.from(err);
      const cancelled = error.code === Code.Canceled || spec.signal.aborted;
      const at = this.#now();
      journal.update(
        taskId,
        cancelled ? "cancelled" : "failed",
        { completed_at: new Date(at), total_ms: at - started, failure_reason: cancelled ? null : error.rawMessage },
        attempt?.node.id ?? null,
        error.rawMessage,
      );
      throw error;
    } finally {
      spec.signal.removeEventListener("abort", onAbort);
      // the consumer stopped early (client gone): the node must stop too
      attempt?.cancel("client_cancelled");
    }
  }
}
