// One part of a task: a run on one node at a time with failover (the seam), its own task row, its own reputation
// outcomes. A single-mode request is one part; the divided modes run several and combine them.
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { TaskErrorReason, TaskPayloadSchema, type TaskChunk } from "../../../gen/iris/v1/node_pb.ts";
import { Channel } from "../../../common/channel.ts";
import { chunkTokenCount } from "../../../common/chunk-tokens.ts";
import type { JsonValue } from "../../db/schema.ts";
import type { Difficulty } from "../../../common/vocabulary.ts";
import type { LiveNode, NodeRegistry } from "../../nodes/registry.ts";
import { servesDifficulty, tiersServing } from "../../nodes/tier.ts";
import type { TaskOutcome, TaskOutcomeInput } from "../../reputation/ledger.ts";
import { Attempt } from "../attempt.ts";
import { afterContextRefusal } from "../capable-nodes.ts";
import { contextNeed } from "../context-fit.ts";
import type { TaskJournal } from "../journal.ts";
import { WaitQueue, type QueuePeers, type Waiter } from "../queue.ts";
import { deadlineMs, eligible, pickNode, type DifficultyTimeouts, type RouteRequest } from "../router.ts";
import { estimateQueueWaitMs } from "../wait-estimate.ts";
import type { PartEvent, PartResult, PartSpec } from "./part-spec.ts";
import { chatRoleToProto } from "../../../common/vocabulary.ts";

export type { ChatMessageInput, PartEvent, PartResult, PartSpec } from "./part-spec.ts";

export interface PartRunnerConfig {
  /** updateMs: how often a waiting request is told its position and estimate again (default 2 s). */
  queue: { maxLength: number; maxWaitMs: number; updateMs?: number };
  timeoutsMs: DifficultyTimeouts;
  maxAttempts: number;
}

/** What happened to one attempt. */
type Outcome =
  | { kind: "completed"; promptTokens: number; completionTokens: number; finishReason: string }
  | { kind: "retry"; reason: string }
  /** The node's answer failed authentication or order checks: re-routed, and the node is at fault. */
  | { kind: "invalid"; reason: string }
  | { kind: "fatal"; error: ConnectError };


export class PartRunner {
  readonly #queue: WaitQueue;

  constructor(
    private readonly registry: NodeRegistry,
    private readonly journal: TaskJournal,
    private readonly config: PartRunnerConfig,
    private readonly logger: Logger,
    private readonly throughput?: { record(tokens?: number): void },
    private readonly outcomes?: { record(input: TaskOutcomeInput): void },
    /** The other coordinators' waiting requests (a cluster): positions and free nodes are shared with them. */
    queuePeers?: QueuePeers,
  ) {
    const pick = (request: RouteRequest, allow?: (node: LiveNode) => boolean) => pickNode(allow ? allowed(registry.nodes(), allow) : registry.nodes(), request);
    this.#queue = new WaitQueue(config.queue.maxLength, pick, config.queue.updateMs ?? 2_000, queuePeers);
    registry.onCapacity(() => this.#queue.drain());
  }

  get queueLength(): number {
    return this.#queue.length;
  }

  /** Writes the part's row (queued). Separate from run() so a parent's row can precede its parts'. */
  record(spec: PartSpec): void {
    this.journal.created({
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
    this.journal.update(spec.taskId, "cancelled", { completed_at: new Date(), total_ms: Math.max(0, Date.now() - spec.started) }, null, reason);
  }

  /**
   * Runs the part: yields queue positions, each assignment and the tokens as they arrive; returns the whole
   * answer, or throws (the row is then failed or cancelled with the reason). The row must be recorded first.
   */
  async *run(spec: PartSpec): AsyncGenerator<PartEvent, PartResult, undefined> {
    const { taskId, difficulty, started, maxTokens } = spec;
    const request: RouteRequest = {
      difficulty,
      model: spec.model,
      exclude: spec.exclude ?? new Set(),
      sameModel: spec.sameModel,
      reputationAbove: spec.reputationAbove,
      context: spec.context,
    };
    const exclude = request.exclude as Set<string>;
    const log = this.logger.child({ taskId });
    const streamed: string[] = [];
    const nodeIds: string[] = [];
    let tokensBefore = 0; // completion tokens of earlier attempts (a failover's prefix)
    let firstTokenAt: number | undefined;
    let attempt: Attempt | undefined;
    const queued: { since?: number } = {};
    const onAbort = () => attempt?.events.push({ kind: "aborted" });
    spec.signal.addEventListener("abort", onAbort);
    try {
      // an abort before the listener (the client left while the request was classified or waited in its group)
      // fires no event: without this the part would wait in the queue, or run on a node, for nobody
      if (spec.signal.aborted) throw new ConnectError("the client cancelled the request", Code.Canceled);
      for (let tries = 1; ; tries++) {
        attempt = yield* this.#acquire(taskId, request, spec, started, queued);
        const node = attempt.node;
        nodeIds.push(node.id);
        if (spec.distinct) exclude.add(node.id);
        const deadlineAt = started + deadlineMs(this.config.timeoutsMs, difficulty, maxTokens, node.capabilities.tokensPerSecond);
        const payload = create(TaskPayloadSchema, {
          messages: spec.messages.map((m) => ({ role: chatRoleToProto[m.role], content: m.content })),
          assistantPrefix: streamed.join(""),
          temperature: spec.temperature,
          seed: spec.seed === undefined ? undefined : BigInt(spec.seed),
        });
        const remainingTokens = Math.max(1, maxTokens - tokensBefore);
        if (!(await attempt.assign({ difficulty, deadlineAt, maxTokens: remainingTokens, payload }))) {
          attempt.end();
          // a node still connected was only busy at its home coordinator (another took the slot first): not excluded
          if (!node.connected) exclude.add(node.id);
          continue;
        }
        queued.since = undefined;
        const assignedAt = Date.now();
        let nodeFirstTokenAt: number | undefined;
        const judgeAt = (finishedAt: number) => (outcome: TaskOutcome, completionTokens: number, evidence?: Record<string, JsonValue>) =>
          this.outcomes?.record({
            nodeId: node.id,
            accountId: node.accountId,
            taskId,
            difficulty,
            tier: node.tier,
            outcome,
            completionTokens,
            generationMs: finishedAt - (nodeFirstTokenAt ?? assignedAt),
            responseMs: finishedAt - assignedAt,
            ...(evidence ? { evidence } : {}),
          });
        const judge = (outcome: TaskOutcome, completionTokens: number) => judgeAt(Date.now())(outcome, completionTokens);
        this.journal.update(taskId, "assigned", { node_id: node.id, tier: node.tier, attempt: tries, assigned_at: new Date(), deadline_at: new Date(deadlineAt) }, node.id);
        yield { type: "assigned", node, attempt: tries };
        let outcome: Outcome | undefined;
        // tokens of this attempt's chunks, as each chunk says (one piece may carry several); at most its budget
        let attemptTokens = 0;
        for await (const event of attempt.events) {
          if (event.kind === "chunk") {
            // the chunks already waiting (the client reads slower than the node writes) go out as one token event:
            // under load, fewer and larger messages; when the client keeps up, each chunk is its own event
            let text = "";
            let tokens = 0;
            let invalid: string | undefined;
            for (let chunk: TaskChunk | undefined = event.chunk; chunk; chunk = nextQueuedChunk(attempt)) {
              const opened = attempt.openChunk(chunk);
              if (!opened.ok) {
                invalid = opened.reason;
                break;
              }
              text += opened.text;
              tokens += chunkTokenCount(chunk);
            }
            if (invalid !== undefined) {
              outcome = { kind: "invalid", reason: `node ${node.id} sent an invalid chunk: ${invalid}` };
              break;
            }
            tokens = Math.min(tokens, remainingTokens - attemptTokens);
            attemptTokens += tokens;
            nodeFirstTokenAt ??= Date.now();
            this.throughput?.record(tokens);
            if (firstTokenAt === undefined) {
              firstTokenAt = Date.now();
              this.journal.update(taskId, "streaming", { first_token_at: new Date(firstTokenAt), ttft_ms: firstTokenAt - started }, node.id);
            }
            streamed.push(text);
            yield { type: "token", text };
          } else if (event.kind === "result") {
            const { result } = event;
            const opened = attempt.openResult(result);
            if (!opened.ok) {
              outcome = { kind: "invalid", reason: `node ${node.id} sent an invalid result: ${opened.reason}` };
              break;
            }
            if (opened.text) {
              streamed.push(opened.text);
              firstTokenAt ??= Date.now();
              yield { type: "token", text: opened.text };
            }
            const completion = Math.min(result.usage?.completionTokens ?? attemptTokens, remainingTokens);
            const completionTokens = Math.min(tokensBefore + completion, maxTokens);
            outcome = { kind: "completed", promptTokens: result.usage?.promptTokens ?? 0, completionTokens, finishReason: result.finishReason || "stop" };
            break;
          } else if (event.kind === "error") {
            const reason = `node ${node.id}: ${TaskErrorReason[event.error.reason] ?? "error"}: ${event.error.message}`;
            // too long for this node's window: another with a larger one may take it, else the caller hears why in words
            const tooLong = event.error.reason === TaskErrorReason.CONTEXT_TOO_LONG;
            const need = spec.context ?? contextNeed([...spec.messages, { content: streamed.join("") }], maxTokens);
            const refusal = tooLong ? afterContextRefusal(this.registry.nodes(), request, node, need) : undefined;
            outcome = refusal ? { kind: "fatal", error: refusal } : { kind: "retry", reason };
            break;
          } else if (event.kind === "lost") {
            outcome = { kind: "retry", reason: `node ${node.id} was lost: ${event.reason}` };
            break;
          } else if (event.kind === "deadline") {
            attempt.cancel("deadline");
            judge("timeout", attemptTokens);
            outcome = { kind: "fatal", error: new ConnectError(`the task passed its ${difficulty} deadline of ${deadlineAt - started} ms`, Code.DeadlineExceeded) };
            break;
          } else {
            attempt.cancel("client_cancelled");
            throw new ConnectError("the client cancelled the request", Code.Canceled);
          }
        }
        tokensBefore += attemptTokens;
        attempt.end();
        outcome ??= { kind: "retry", reason: `node ${node.id} ended the task without a result` };
        if (outcome.kind === "completed") {
          const completedAt = Date.now();
          const ownTokens = Math.max(0, outcome.completionTokens - (tokensBefore - attemptTokens));
          const judgeLater = judgeAt(completedAt);
          if (spec.reward === "now") judgeLater("completed", ownTokens);
          this.journal.update(taskId, "completed", { prompt_tokens: outcome.promptTokens, completion_tokens: outcome.completionTokens, completed_at: new Date(completedAt), total_ms: completedAt - started }, node.id);
          return {
            taskId,
            text: streamed.join(""),
            pieces: streamed,
            promptTokens: outcome.promptTokens,
            completionTokens: outcome.completionTokens,
            finishReason: outcome.finishReason,
            node,
            nodeIds,
            firstTokenAt,
            completedAt,
            judge: (verdict, evidence) => judgeLater(verdict, ownTokens, evidence),
          };
        }
        if (outcome.kind === "fatal") throw outcome.error;
        if (outcome.kind === "invalid") {
          judge("invalid_response", attemptTokens);
          // an unverifiable answer may contain anything: the text relayed so far stays, nothing more from this node
          this.journal.note(taskId, "streaming", node.id, `invalid response: ${outcome.reason}`);
        }
        log.warn({ nodeId: node.id, reason: outcome.reason, streamedChars: streamed.join("").length }, "re-routing the task");
        this.journal.note(taskId, streamed.length > 0 ? "streaming" : "queued", node.id, `re-routed: ${outcome.reason}`);
        exclude.add(node.id);
        if (tries >= this.config.maxAttempts) {
          throw new ConnectError(`the task failed on ${tries} nodes; last: ${outcome.reason}`, Code.Unavailable);
        }
      }
    } catch (err) {
      const error = ConnectError.from(err);
      const cancelled = error.code === Code.Canceled || spec.signal.aborted;
      this.journal.update(taskId, cancelled ? "cancelled" : "failed", { completed_at: new Date(), total_ms: Date.now() - started, failure_reason: cancelled ? null : error.rawMessage }, attempt?.node.id ?? null, error.rawMessage);
      throw error;
    } finally {
      spec.signal.removeEventListener("abort", onAbort);
      // the consumer stopped early (client gone): the node must stop too
      attempt?.cancel("client_cancelled");
    }
  }

  /** A node with a slot reserved for the task: at once when one is free, else after waiting in the queue. */
  /**
   * `queued.since`: when this part began to wait. A part whose node's home coordinator refused it (another took the
   * slot first) waits again from its first place, not behind the requests that came since.
   */
  async *#acquire(taskId: string, request: RouteRequest, spec: PartSpec, started: number, queued: { since?: number }): AsyncGenerator<PartEvent, Attempt, undefined> {
    const node = pickNode(this.#queue.openNodes(this.registry.nodes()), request);
    if (node) return new Attempt(taskId, node, this.registry);
    if (spec.wait === "never" || (spec.wait === "while-possible" && !this.#anyEligible(request))) throw this.#noEligibleNode(request);
    const { maxWaitMs } = this.config.queue;
    type WaitEvent = { kind: "position"; position: number } | { kind: "claimed"; attempt: Attempt } | { kind: "timeout" } | { kind: "aborted" };
    const events = new Channel<WaitEvent>();
    const waiter: Waiter = {
      request,
      claim: (claimed: LiveNode) => events.push({ kind: "claimed", attempt: new Attempt(taskId, claimed, this.registry) }),
      position: (position) => events.push({ kind: "position", position }),
    };
    queued.since ??= Date.now();
    this.#queue.enqueue(waiter, queued.since);
    const waitUntil = Date.now() + maxWaitMs;
    const timer = setTimeout(() => events.push({ kind: "timeout" }), maxWaitMs);
    const onAbort = () => events.push({ kind: "aborted" });
    spec.signal.addEventListener("abort", onAbort);
    if (spec.signal.aborted) onAbort();
    try {
      for await (const event of events) {
        if (event.kind === "claimed") return event.attempt;
        if (event.kind === "position") {
          const estimatedWaitMs = estimateQueueWaitMs(this.registry.nodes(), request, event.position);
          yield { type: "queued", position: event.position, maxWaitMs: Math.max(0, waitUntil - Date.now()), ...(estimatedWaitMs !== undefined ? { estimatedWaitMs } : {}) };
        } else if (event.kind === "aborted") throw new ConnectError("the client cancelled the request", Code.Canceled);
        else throw this.#noNodeError(request.difficulty, maxWaitMs);
      }
      throw new Error("the wait ended without a node");
    } finally {
      clearTimeout(timer);
      spec.signal.removeEventListener("abort", onAbort);
      this.#queue.remove(waiter);
      // a node claimed after we stopped waiting goes back
      events.close();
      for (let next = await events.next(); !next.done; next = await events.next()) {
        if (next.value.kind === "claimed") next.value.attempt.end();
      }
    }
  }

  #anyEligible(request: RouteRequest): boolean {
    for (const node of this.registry.nodes()) if (node.connected && eligible(node, request)) return true;
    return false;
  }

  #noEligibleNode(request: RouteRequest): ConnectError {
    const model = request.sameModel ? ` serving ${request.sameModel.modelName} (${request.sameModel.quantization || "no quantization"})` : "";
    const above = request.reputationAbove !== undefined ? ` with reputation above ${request.reputationAbove}` : "";
    return new ConnectError(`no other free node${model}${above} can take this part now`, Code.Unavailable);
  }

  #noNodeError(difficulty: Difficulty, waitedMs: number): ConnectError {
    const tiers = tiersServing(difficulty).join(" or ");
    const waited = `waited ${Math.round(waitedMs / 100) / 10} s`;
    if (this.registry.anyServing(servesDifficulty, difficulty)) {
      return new ConnectError(`every node that serves ${difficulty} requests (tier ${tiers}) is busy; ${waited}; try again later`, Code.ResourceExhausted);
    }
    return new ConnectError(`no node that serves ${difficulty} requests (tier ${tiers}) is online; ${waited}`, Code.Unavailable);
  }
}

function* allowed(nodes: Iterable<LiveNode>, allow: (node: LiveNode) => boolean): Generator<LiveNode> {
  for (const node of nodes) if (allow(node)) yield node;
}

/** The next event of the attempt when it is a chunk already queued (taken), else undefined (left in place). */
function nextQueuedChunk(attempt: Attempt): TaskChunk | undefined {
  const next = attempt.events.peek();
  if (next?.kind !== "chunk") return undefined;
  attempt.events.take();
  return next.chunk;
}
