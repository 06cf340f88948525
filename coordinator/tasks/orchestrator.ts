// The orchestrator: classify, wait for a capable node, assign, relay tokens as they come, fail over, finish.
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { create } from "@bufbuild/protobuf";
import { Role } from "../../gen/iris/v1/common_pb.ts";
import { TaskErrorReason, TaskPayloadSchema } from "../../gen/iris/v1/node_pb.ts";
import { Channel } from "../../common/channel.ts";
import type { Difficulty, NodeTier } from "../db/schema.ts";
import type { LiveNode, NodeRegistry } from "../nodes/registry.ts";
import { servesDifficulty, tiersServing } from "../nodes/tier.ts";
import type { TaskOutcomeInput } from "../reputation/ledger.ts";
import { Attempt } from "./attempt.ts";
import { applyHint, type Classifier } from "./classifier.ts";
import type { TaskJournal } from "./journal.ts";
import { WaitQueue, type Waiter } from "./queue.ts";
import { deadlineMs, normalizeModelHint, pickNode, servesModel, type DifficultyTimeouts, type RouteRequest } from "./router.ts";

export interface ChatInput {
  messages: { role: "system" | "user" | "assistant"; content: string }[];
  model?: string;
  /** 0 or undefined: the configured default. */
  maxTokens?: number;
  temperature?: number;
  difficultyHint?: Difficulty;
  accountId?: string;
  clientAddress?: string;
  /** Aborts when the client goes away: the node is told to cancel. */
  signal: AbortSignal;
}

export type ChatEvent =
  | { type: "queued"; position: number; maxWaitMs: number }
  | {
      type: "accepted";
      taskId: string;
      difficulty: Difficulty;
      tier: NodeTier;
      nodeId: string;
      model: string;
      classifier: string;
    }
  | { type: "token"; text: string }
  | {
      type: "done";
      taskId: string;
      promptTokens: number;
      completionTokens: number;
      ttftMs: number;
      totalMs: number;
      tokensPerSecond: number;
      nodeId: string;
      nodeIds: string[];
      finishReason: string;
    };

export interface OrchestratorConfig {
  queue: { maxLength: number; maxWaitMs: number };
  timeoutsMs: DifficultyTimeouts;
  /** Nodes tried for one request before it fails. */
  maxAttempts: number;
  defaultMaxTokens: number;
}

/** What happened to one attempt. */
type Outcome =
  | { kind: "completed"; promptTokens: number; completionTokens: number; finishReason: string }
  | { kind: "retry"; reason: string }
  /** The node's answer failed authentication or order checks: re-routed, and the node is at fault. */
  | { kind: "invalid"; reason: string }
  | { kind: "fatal"; error: ConnectError };

/** Node errors that another node would hit just the same. */
const notRetryable = new Set([TaskErrorReason.CONTEXT_TOO_LONG]);

export class Orchestrator {
  readonly #queue: WaitQueue;

  constructor(
    private readonly registry: NodeRegistry,
    private readonly journal: TaskJournal,
    private readonly classifier: Classifier,
    private readonly config: OrchestratorConfig,
    private readonly logger: Logger,
    /** Counts relayed tokens for the network's tokens/s figure. */
    private readonly throughput?: { record(tokens?: number): void },
    /** Hears what each node did with a task (the reputation rules). */
    private readonly outcomes?: { record(input: TaskOutcomeInput): void },
  ) {
    this.#queue = new WaitQueue(config.queue.maxLength, (request) => pickNode(registry.nodes(), request));
    registry.onCapacity(() => this.#queue.drain());
  }

  get queueLength(): number {
    return this.#queue.length;
  }

  async *chat(input: ChatInput): AsyncGenerator<ChatEvent, void, undefined> {
    const started = Date.now();
    const taskId = randomUUID();
    const model = normalizeModelHint(input.model);
    if (model !== undefined && ![...this.registry.nodes()].some((node) => servesModel(node, model))) {
      throw new ConnectError(`no connected node serves model "${input.model}"; ListModels shows the models served now`, Code.NotFound);
    }
    const { difficulty, classifier } = applyHint(await this.classifier.classify(input), input.difficultyHint);
    const maxTokens = input.maxTokens || this.config.defaultMaxTokens;
    const log = this.logger.child({ taskId });
    this.journal.created({
      id: taskId,
      difficulty,
      classifier,
      account_id: input.accountId ?? null,
      client_address: input.clientAddress ?? null,
      max_tokens: maxTokens,
    });
    const streamed: string[] = [];
    const nodeIds: string[] = [];
    const exclude = new Set<string>();
    let tokensBefore = 0; // completion tokens of earlier attempts (a failover's prefix)
    let firstTokenAt: number | undefined;
    let accepted = false;
    let attempt: Attempt | undefined;
    const onAbort = () => attempt?.events.push({ kind: "aborted" });
    input.signal.addEventListener("abort", onAbort);
    try {
      for (let tries = 1; ; tries++) {
        attempt = yield* this.#acquire(taskId, { difficulty, model, exclude }, input.signal, started);
        const node = attempt.node;
        nodeIds.push(node.id);
        const deadlineAt = started + deadlineMs(this.config.timeoutsMs, difficulty, maxTokens, node.capabilities.tokensPerSecond);
        const payload = create(TaskPayloadSchema, {
          messages: input.messages.map((m) => ({ role: roleEnum[m.role], content: m.content })),
          assistantPrefix: streamed.join(""),
          temperature: input.temperature,
        });
        const remainingTokens = Math.max(1, maxTokens - tokensBefore);
        if (!attempt.assign({ difficulty, deadlineAt, maxTokens: remainingTokens, payload })) {
          attempt.end();
          exclude.add(node.id);
          continue;
        }
        const assignedAt = Date.now();
        let nodeFirstTokenAt: number | undefined;
        const judge = (outcome: TaskOutcomeInput["outcome"], completionTokens: number) =>
          this.outcomes?.record({
            nodeId: node.id,
            accountId: node.accountId,
            taskId,
            difficulty,
            tier: node.tier,
            outcome,
            completionTokens,
            generationMs: Date.now() - (nodeFirstTokenAt ?? assignedAt),
            responseMs: Date.now() - assignedAt,
          });
        this.journal.update(taskId, "assigned", { node_id: node.id, tier: node.tier, attempt: tries, assigned_at: new Date(), deadline_at: new Date(deadlineAt) }, node.id);
        if (!accepted) {
          accepted = true;
          yield { type: "accepted", taskId, difficulty, tier: node.tier, nodeId: node.id, model: node.capabilities.modelName, classifier };
        }
        let outcome: Outcome | undefined;
        let sequence = 0;
        for await (const event of attempt.events) {
          if (event.kind === "chunk") {
            const opened = attempt.openChunk(event.chunk);
            if (!opened.ok) {
              outcome = { kind: "invalid", reason: `node ${node.id} sent an invalid chunk: ${opened.reason}` };
              break;
            }
            sequence++;
            nodeFirstTokenAt ??= Date.now();
            this.throughput?.record(1);
            if (firstTokenAt === undefined) {
              firstTokenAt = Date.now();
              this.journal.update(taskId, "streaming", { first_token_at: new Date(firstTokenAt), ttft_ms: firstTokenAt - started }, node.id);
            }
            streamed.push(opened.text);
            yield { type: "token", text: opened.text };
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
            const completion = result.usage?.completionTokens ?? sequence;
            outcome = { kind: "completed", promptTokens: result.usage?.promptTokens ?? 0, completionTokens: tokensBefore + completion, finishReason: result.finishReason || "stop" };
            break;
          } else if (event.kind === "error") {
            const reason = `node ${node.id}: ${TaskErrorReason[event.error.reason] ?? "error"}: ${event.error.message}`;
            outcome = notRetryable.has(event.error.reason)
              ? { kind: "fatal", error: new ConnectError(reason, Code.InvalidArgument) }
              : { kind: "retry", reason };
            break;
          } else if (event.kind === "lost") {
            outcome = { kind: "retry", reason: `node ${node.id} was lost: ${event.reason}` };
            break;
          } else if (event.kind === "deadline") {
            attempt.cancel("deadline");
            judge("timeout", sequence);
            outcome = { kind: "fatal", error: new ConnectError(`the task passed its ${difficulty} deadline of ${deadlineAt - started} ms`, Code.DeadlineExceeded) };
            break;
          } else {
            attempt.cancel("client_cancelled");
            throw new ConnectError("the client cancelled the request", Code.Canceled);
          }
        }
        tokensBefore += sequence;
        attempt.end();
        outcome ??= { kind: "retry", reason: `node ${node.id} ended the task without a result` };
        if (outcome.kind === "completed") {
          const finished = Date.now();
          const generationMs = firstTokenAt !== undefined ? finished - firstTokenAt : 0;
          const done = {
            type: "done" as const,
            taskId,
            promptTokens: outcome.promptTokens,
            completionTokens: outcome.completionTokens,
            ttftMs: (firstTokenAt ?? finished) - started,
            totalMs: finished - started,
            tokensPerSecond: generationMs > 0 ? (outcome.completionTokens * 1000) / generationMs : 0,
            nodeId: node.id,
            nodeIds,
            finishReason: outcome.finishReason,
          };
          judge("completed", outcome.completionTokens - tokensBefore);
          this.journal.update(taskId, "completed", { prompt_tokens: done.promptTokens, completion_tokens: done.completionTokens, completed_at: new Date(finished), total_ms: done.totalMs }, node.id);
          yield done;
          return;
        }
        if (outcome.kind === "fatal") throw outcome.error;
        if (outcome.kind === "invalid") {
          judge("invalid_response", sequence);
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
      const cancelled = error.code === Code.Canceled || input.signal.aborted;
      this.journal.update(taskId, cancelled ? "cancelled" : "failed", { completed_at: new Date(), total_ms: Date.now() - started, failure_reason: cancelled ? null : error.rawMessage }, attempt?.node.id ?? null, error.rawMessage);
      throw error;
    } finally {
      input.signal.removeEventListener("abort", onAbort);
      // the consumer stopped early (client gone): the node must stop too
      attempt?.cancel("client_cancelled");
    }
  }

  /** A node with a slot reserved for the task: at once when one is free, else after waiting in the queue. */
  async *#acquire(taskId: string, request: RouteRequest, signal: AbortSignal, started: number): AsyncGenerator<ChatEvent, Attempt, undefined> {
    const node = pickNode(this.registry.nodes(), request);
    if (node) return new Attempt(taskId, node, this.registry);
    const { maxWaitMs } = this.config.queue;
    type WaitEvent = { kind: "position"; position: number } | { kind: "claimed"; attempt: Attempt } | { kind: "timeout" } | { kind: "aborted" };
    const events = new Channel<WaitEvent>();
    const waiter: Waiter = {
      request,
      claim: (claimed: LiveNode) => events.push({ kind: "claimed", attempt: new Attempt(taskId, claimed, this.registry) }),
      position: (position) => events.push({ kind: "position", position }),
    };
    this.#queue.enqueue(waiter);
    const timer = setTimeout(() => events.push({ kind: "timeout" }), maxWaitMs);
    const onAbort = () => events.push({ kind: "aborted" });
    signal.addEventListener("abort", onAbort);
    try {
      for await (const event of events) {
        if (event.kind === "claimed") return event.attempt;
        if (event.kind === "position") yield { type: "queued", position: event.position, maxWaitMs: Math.max(0, maxWaitMs - (Date.now() - started)) };
        else if (event.kind === "aborted") throw new ConnectError("the client cancelled the request", Code.Canceled);
        else throw this.#noNodeError(request.difficulty, maxWaitMs);
      }
      throw new Error("the wait ended without a node");
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      this.#queue.remove(waiter);
      // a node claimed after we stopped waiting goes back
      events.close();
      for (let next = await events.next(); !next.done; next = await events.next()) {
        if (next.value.kind === "claimed") next.value.attempt.end();
      }
    }
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

const roleEnum = { system: Role.SYSTEM, user: Role.USER, assistant: Role.ASSISTANT } as const;
