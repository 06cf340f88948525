// One attempt of a part on one node: assigns it, relays the node's tokens as they arrive (checked and opened), and
// ends with what happened (AttemptOutcome); the part runner (part-runner.ts) decides what comes next.
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { TaskErrorReason, TaskPayloadSchema, type TaskChunk } from "../../gen/iris/v1/node_pb.ts";
import { chunkTokenCount } from "../../common/chunk-tokens.ts";
import { chatRoleToProto } from "../../common/vocabulary.ts";
import type { JsonValue } from "../db/schema.ts";
import type { NodeRegistry } from "../nodes/registry.ts";
import type { TaskOutcome, TaskOutcomeInput } from "../reputation/outcomes.ts";
import type { Attempt } from "./attempt.ts";
import { afterContextRefusal } from "./capable-nodes.ts";
import { contextNeed } from "./context-fit.ts";
import type { TaskJournal } from "./journal.ts";
import type { PartEvent, PartSpec } from "./part-spec.ts";
import { deadlineMs, type DifficultyTimeouts, type RouteRequest } from "./router.ts";

export interface AttemptDeps {
  registry: NodeRegistry;
  journal: TaskJournal;
  timeoutsMs: DifficultyTimeouts;
  /** Counts relayed tokens for the network's tokens/s figure. */
  throughput?: { record(tokens?: number): void };
  /** Hears what each node did with a task (the reputation rules). */
  outcomes?: { record(input: TaskOutcomeInput): void };
  now: () => number;
}

/** What the part has relayed so far, over all its attempts: a failover continues after it. */
export interface PartProgress {
  /** The text relayed, in the pieces the nodes sent. */
  readonly streamed: string[];
  /** Completion tokens of earlier attempts (a failover's prefix). */
  tokensBefore: number;
  /** When the part's first token came; undefined before. */
  firstTokenAt: number | undefined;
}

/** Applies a reputation outcome to the node of a completed attempt. */
export type AttemptJudge = (outcome: TaskOutcome, evidence?: Record<string, JsonValue>) => void;

/** What happened to one attempt. */
export type AttemptOutcome =
  /**
   * The node's stream was already gone, or its home coordinator refused the assignment: nothing ran. `unreachable`:
   * this task can never reach the node from here (too large for the cluster bus).
   */
  | { kind: "unassigned"; unreachable: boolean }
  | {
      kind: "completed";
      promptTokens: number;
      completionTokens: number;
      finishReason: string;
      completedAt: number;
      judge: AttemptJudge;
    }
  | { kind: "retry"; reason: string }
  /** The node's answer failed authentication or order checks: re-routed, and the node is at fault (already judged). */
  | { kind: "invalid"; reason: string }
  | { kind: "fatal"; error: ConnectError };

/**
 * Runs `attempt` (the `tries`-th of the part): yields the assignment and the tokens, adds them to `progress`, and
 * returns the outcome with the attempt ended. Throws Canceled when the client goes away.
 */
export async function* runAttempt(
  deps: AttemptDeps,
  attempt: Attempt,
  spec: PartSpec,
  request: RouteRequest,
  tries: number,
  progress: PartProgress,
): AsyncGenerator<PartEvent, AttemptOutcome, undefined> {
  const { journal, now } = deps;
  const { taskId, difficulty, started, maxTokens } = spec;
  const { node } = attempt;
  const { streamed } = progress;
  const deadlineAt = started + deadlineMs(deps.timeoutsMs, difficulty, maxTokens, node.capabilities.tokensPerSecond);
  const payload = create(TaskPayloadSchema, {
    messages: spec.messages.map((m) => ({ role: chatRoleToProto[m.role], content: m.content })),
    assistantPrefix: streamed.join(""),
    temperature: spec.temperature,
    seed: spec.seed === undefined ? undefined : BigInt(spec.seed),
  });
  const tokensBefore = progress.tokensBefore;
  const remainingTokens = Math.max(1, maxTokens - tokensBefore);
  const streaming = spec.streaming !== false;
  const sent = await attempt.assign({ difficulty, deadlineAt, maxTokens: remainingTokens, payload, streaming });
  if (sent !== true) {
    attempt.end();
    return { kind: "unassigned", unreachable: sent === "unreachable" };
  }
  const assignedAt = now();
  let nodeFirstTokenAt: number | undefined;
  const judgeAt =
    (finishedAt: number) => (outcome: TaskOutcome, completionTokens: number, evidence?: Record<string, JsonValue>) =>
      deps.outcomes?.record({
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
  const judge = (outcome: TaskOutcome, completionTokens: number) => judgeAt(now())(outcome, completionTokens);
  journal.update(
    taskId,
    "assigned",
    {
      node_id: node.id,
      tier: node.tier,
      attempt: tries,
      assigned_at: new Date(assignedAt),
      deadline_at: new Date(deadlineAt),
    },
    node.id,
  );
  yield { type: "assigned", node, attempt: tries };
  let outcome: AttemptOutcome | undefined;
  let completed: { promptTokens: number; completionTokens: number; finishReason: string } | undefined;
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
      nodeFirstTokenAt ??= now();
      deps.throughput?.record(tokens);
      if (progress.firstTokenAt === undefined) {
        progress.firstTokenAt = now();
        journal.update(
          taskId,
          "streaming",
          { first_token_at: new Date(progress.firstTokenAt), ttft_ms: progress.firstTokenAt - started },
          node.id,
        );
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
        progress.firstTokenAt ??= now();
        yield { type: "token", text: opened.text };
      }
      const completion = Math.min(result.usage?.completionTokens ?? attemptTokens, remainingTokens);
      completed = {
        promptTokens: result.usage?.promptTokens ?? 0,
        completionTokens: Math.min(tokensBefore + completion, maxTokens),
        finishReason: result.finishReason || "stop",
      };
      break;
    } else if (event.kind === "error") {
      const reason = `node ${node.id}: ${TaskErrorReason[event.error.reason] ?? "error"}: ${event.error.message}`;
      // too long for this node's window: another with a larger one may take it, else the caller hears why in words
      const tooLong = event.error.reason === TaskErrorReason.CONTEXT_TOO_LONG;
      const need = spec.context ?? contextNeed([...spec.messages, { content: streamed.join("") }], maxTokens);
      const refusal = tooLong ? afterContextRefusal(deps.registry.nodes(), request, node, need) : undefined;
      outcome = refusal ? { kind: "fatal", error: refusal } : { kind: "retry", reason };
      break;
    } else if (event.kind === "lost") {
      outcome = { kind: "retry", reason: `node ${node.id} was lost: ${event.reason}` };
      break;
    } else if (event.kind === "deadline") {
      attempt.cancel("deadline");
      judge("timeout", attemptTokens);
      outcome = {
        kind: "fatal",
        error: new ConnectError(
          `the task passed its ${difficulty} deadline of ${deadlineAt - started} ms`,
          Code.DeadlineExceeded,
        ),
      };
      break;
    } else {
      attempt.cancel("client_cancelled");
      throw new ConnectError("the client cancelled the request", Code.Canceled);
    }
  }
  progress.tokensBefore += attemptTokens;
  attempt.end();
  if (completed) {
    const completedAt = now();
    const judgeLater = judgeAt(completedAt);
    // the tokens this node produced: the total less the earlier attempts' prefix
    const ownTokens = Math.max(0, completed.completionTokens - tokensBefore);
    return {
      kind: "completed",
      ...completed,
      completedAt,
      judge: (verdict, evidence) => judgeLater(verdict, ownTokens, evidence),
    };
  }
  outcome ??= { kind: "retry", reason: `node ${node.id} ended the task without a result` };
  if (outcome.kind === "invalid") {
    judge("invalid_response", attemptTokens);
    // an unverifiable answer may contain anything: the text relayed so far stays, nothing more from this node
    journal.note(taskId, "streaming", node.id, `invalid response: ${outcome.reason}`);
  }
  return outcome;
}

/** The next event of the attempt when it is a chunk already queued (taken), else undefined (left in place). */
function nextQueuedChunk(attempt: Attempt): TaskChunk | undefined {
  const next = attempt.events.peek();
  if (next?.kind !== "chunk") return undefined;
  attempt.events.take();
  return next.chunk;
}
