// What the divided modes share: the parent task's row, parts running side by side, auto's choice, dispatch.
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { Channel } from "../../../common/channel.ts";
import type { Config } from "../../config.ts";
import type { Difficulty, DivisionMode } from "../../../common/vocabulary.ts";
import type { LiveNode, NodeRegistry } from "../../nodes/registry.ts";
import type { TaskJournal } from "../journal.ts";
import type { ChatEvent, ChatInput } from "../chat.ts";
import { eligible, type RouteRequest } from "../router.ts";
import { runConsensus } from "./consensus.ts";
import { fitsOneNode, planContext, runContext } from "./context.ts";
import type { MismatchRecorder } from "./mismatch.ts";
import { chooseAutoMode } from "./mode.ts";
import { hardest, nodesServing, partDifficulty } from "./part-difficulty.ts";
import type { PartEvent, PartResult, PartRunner, PartSpec } from "./part.ts";
import { ruleBasedParts } from "./planner.ts";
import { runSubtasks } from "./subtasks.ts";

export interface DivisionContext {
  parts: PartRunner;
  registry: NodeRegistry;
  journal: TaskJournal;
  config: Config["division"];
  logger: Logger;
  mismatches: MismatchRecorder;
}

/** A request after classification, before any node is asked. */
export interface DividedTask {
  taskId: string;
  input: ChatInput;
  /** The normalised model hint. */
  model: string | undefined;
  difficulty: Difficulty;
  classifier: string;
  maxTokens: number;
  started: number;
}

export function runDivided(ctx: DivisionContext, task: DividedTask, mode: Exclude<DivisionMode, "single">): AsyncGenerator<ChatEvent, void, undefined> {
  if (mode === "consensus") return runConsensus(ctx, task);
  if (mode === "subtasks") return runSubtasks(ctx, task);
  return runContext(ctx, task);
}

/**
 * auto's concrete mode for this request and the nodes online now (see mode.ts for the rule): each candidate's parts
 * are judged on their own (part-difficulty.ts) and counted against the nodes that serve them, so auto never picks a
 * mode that waits for a tier that is not online when another mode's parts can be served.
 */
export function autoMode(ctx: DivisionContext, task: DividedTask): DivisionMode {
  const messages = task.input.messages;
  const plan = planContext(ctx, task);
  const lastUser = messages.findLast((m) => m.role === "user")?.content ?? "";
  const parts = ruleBasedParts(lastUser, ctx.config.subtasksMaxParts);
  const serving = (difficulty: Difficulty) => nodesServing(ctx.registry.nodes(), difficulty, task.model).length;
  const choice = chooseAutoMode({
    conversationTokens: plan.conversationTokens,
    fitsOneNode: fitsOneNode(plan),
    difficulty: task.difficulty,
    wholeNodes: serving(task.difficulty),
    ruleParts: parts.length,
    partNodes: parts.length >= 2 ? serving(hardest(parts.map((part) => partDifficulty(task, part)))) : 0,
  });
  ctx.logger.debug({ taskId: task.taskId, mode: choice.mode, reason: choice.reason }, "auto division mode");
  return choice.mode;
}

export function connectedEligible(registry: NodeRegistry, request: RouteRequest): LiveNode[] {
  return [...registry.nodes()].filter((node) => node.connected && eligible(node, request));
}

/**
 * The divided request's own row: queued → assigned → streaming → completed (usage summed over the parts the
 * answer used) or failed with the reason. It names no node and no tier (its parts' rows do), so payouts,
 * leaderboards and speed statistics count each part's work once.
 */
export class ParentTask {
  #accepted = false;
  #settled = false;
  #firstTokenAt: number | undefined;

  constructor(
    private readonly journal: TaskJournal,
    readonly task: DividedTask,
    readonly mode: DivisionMode,
  ) {
    journal.created({
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
    this.journal.update(taskId, "assigned", { assigned_at: new Date() }, node.id);
    return { type: "accepted", taskId, difficulty, tier: node.tier, nodeId: node.id, model: node.capabilities.modelName, classifier, divisionMode: this.mode };
  }

  /** A token event for the client; the first one marks the task streaming. */
  token(text: string, nodeId: string | null): ChatEvent {
    if (this.#firstTokenAt === undefined) {
      this.#firstTokenAt = Date.now();
      this.journal.update(this.task.taskId, "streaming", { first_token_at: new Date(this.#firstTokenAt), ttft_ms: this.#firstTokenAt - this.task.started }, nodeId);
    }
    return { type: "token", text };
  }

  /** Records completion and returns the done event; usage is summed over `counted`, timings are the user's. */
  complete(last: PartResult, counted: PartResult[], nodeIds: string[], verified: boolean): ChatEvent {
    this.#settled = true;
    const finished = Date.now();
    const promptTokens = counted.reduce((sum, r) => sum + r.promptTokens, 0);
    const completionTokens = counted.reduce((sum, r) => sum + r.completionTokens, 0);
    const firstTokenAt = this.#firstTokenAt ?? finished;
    const generationMs = finished - firstTokenAt;
    this.journal.update(
      this.task.taskId,
      "completed",
      { prompt_tokens: promptTokens, completion_tokens: completionTokens, completed_at: new Date(finished), total_ms: finished - this.task.started },
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
    this.journal.update(
      this.task.taskId,
      cancelled ? "cancelled" : "failed",
      { completed_at: new Date(), total_ms: Date.now() - this.task.started, failure_reason: cancelled ? null : error.rawMessage },
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

export type GroupEvent =
  | { index: number; kind: "event"; event: PartEvent }
  | { index: number; kind: "result"; result: PartResult }
  | { index: number; kind: "error"; error: ConnectError };

/**
 * Parts running side by side, their events merged into one channel; at most `limit` run at once (the rest wait
 * here, in order, rather than in the network's queue with its time limit). Cancelling the group cancels them all.
 */
export class PartGroup {
  readonly events = new Channel<GroupEvent>();
  readonly #controllers: AbortController[] = [];
  readonly #pending: { index: number; spec: PartSpec }[] = [];
  /** Follows the client's signal until `detach()`. */
  readonly #client = new AbortController();
  #detached = false;
  #running = 0;

  constructor(
    private readonly parts: PartRunner,
    signal: AbortSignal,
    private limit = Infinity,
  ) {
    if (signal.aborted) this.#client.abort(signal.reason);
    else signal.addEventListener("abort", () => this.#detached || this.#client.abort(signal.reason), { once: true });
  }

  /**
   * From now on the parts run to their end whatever the client does (consensus copies still being judged after
   * the client got the majority's answer); `cancelAll` still stops them.
   */
  detach(): void {
    this.#detached = true;
  }

  get detached(): boolean {
    return this.#detached;
  }

  /** Records the part's row (queued) and starts it when the limit allows; returns its index in the group. */
  start(spec: Omit<PartSpec, "signal">): number {
    const controller = new AbortController();
    const index = this.#controllers.push(controller) - 1;
    const full: PartSpec = { ...spec, signal: AbortSignal.any([this.#client.signal, controller.signal]) };
    this.parts.record(full);
    this.#pending.push({ index, spec: full });
    this.#launch();
    return index;
  }

  /** Changes how many parts run at once (subtasks: once the plan's parts and their nodes are known). */
  setLimit(limit: number): void {
    this.limit = Math.max(1, limit);
    this.#launch();
  }

  /** Parts started and not yet settled. */
  get running(): number {
    return this.#running;
  }

  cancelAll(): void {
    for (const { spec } of this.#pending.splice(0)) this.parts.abandon(spec, "the task ended before this part started");
    for (const controller of this.#controllers) controller.abort();
  }

  #launch(): void {
    // the client has gone: a part that has not started never will (its row is closed, no node is asked)
    if (this.#client.signal.aborted) {
      for (const { index, spec } of this.#pending.splice(0)) {
        this.parts.abandon(spec, "the client cancelled the request before this part started");
        this.events.push({ index, kind: "error", error: new ConnectError("the client cancelled the request", Code.Canceled) });
      }
      return;
    }
    while (this.#running < this.limit && this.#pending.length > 0) {
      const { index, spec } = this.#pending.shift()!;
      this.#running++;
      // the part's clock (deadline, time to first token) starts when it is handed out, not while it waits here
      void this.#pump(index, { ...spec, started: Date.now() });
    }
  }

  async #pump(index: number, spec: PartSpec): Promise<void> {
    const run = this.parts.run(spec);
    try {
      for (;;) {
        const next = await run.next();
        if (next.done) {
          this.#settle({ index, kind: "result", result: next.value });
          return;
        }
        this.events.push({ index, kind: "event", event: next.value });
      }
    } catch (err) {
      this.#settle({ index, kind: "error", error: ConnectError.from(err) });
    }
  }

  #settle(item: GroupEvent): void {
    this.#running--;
    this.events.push(item);
    this.#launch();
  }
}
